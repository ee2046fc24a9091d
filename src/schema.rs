//! The JSON Schema (draft-07) of the runbook format, so that editors complete and check
//! runbooks as they are written (`# yaml-language-server: $schema=…`). The validator
//! remains the authority: the schema cannot see cycles, hosts or template references.

use serde_json::{Value, json};

/// The schema as a JSON value; `runbook schema` prints it, `schema/runbook.schema.json` is a copy.
#[must_use]
pub fn runbook_schema() -> Value {
    let identifier = json!({ "type": "string", "pattern": "^[a-z0-9-]+$" });
    let duration = json!({
        "type": "string",
        "pattern": "^([0-9]+(ms|s|m|h))+$",
        "description": "A duration: 500ms, 30s, 5m, 2h, 1h30m"
    });
    let retry = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "attempts": { "type": "integer", "minimum": 1, "description": "Total tries, the first included" },
            "delay": { "$ref": "#/definitions/duration" },
            "backoff": { "type": "number", "minimum": 1.0, "maximum": 10.0, "description": "Each delay is the previous one times this" }
        }
    });
    let step = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id"],
        "properties": {
            "id": { "$ref": "#/definitions/identifier", "description": "Unique id of the step" },
            "name": { "type": "string", "description": "What the step does, for people" },
            "on": { "type": "string", "description": "A host or group of the inventory" },
            "run": { "type": "string", "description": "Shell command run on each host of `on`; {{ … }} values are shell-quoted" },
            "approve": { "type": "string", "description": "An operator gate: the question asked" },
            "rollback": { "type": "string", "description": "Command that undoes the step" },
            "verify": { "type": "string", "description": "Read-only command that exits 0 when the step's effect holds" },
            "needs": { "type": "array", "items": { "$ref": "#/definitions/identifier" }, "description": "Steps to wait for; [] starts at once; default: the step above" },
            "when": { "type": "string", "description": "Condition over vars.X and steps.ID.status|stdout|exit_code" },
            "timeout": { "$ref": "#/definitions/duration" },
            "retry": { "$ref": "#/definitions/retry" },
            "readonly": { "type": "boolean", "description": "Changes nothing: may run during --dry-run --probe" },
            "idempotent": { "type": "boolean", "description": "Safe to run twice: rerun on resume if interrupted" },
            "checkpoint": { "type": "string", "description": "A named milestone, shown in status and reports" },
            "max_parallel": { "type": "integer", "minimum": 1 },
            "max_failures": { "type": "integer", "minimum": 0 },
            "only": { "enum": ["drill", "real"] }
        },
        "oneOf": [
            { "required": ["run", "on"], "not": { "required": ["approve"] } },
            { "required": ["approve"], "not": { "anyOf": [{ "required": ["run"] }, { "required": ["on"] }] } }
        ]
    });
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://runbook.invalid/schema/runbook.schema.json",
        "title": "runbook",
        "description": "A disaster-recovery runbook executed by `runbook`",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "properties": {
            "name": { "$ref": "#/definitions/identifier" },
            "description": { "type": "string" },
            "targets": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "rto": { "$ref": "#/definitions/duration", "description": "Recovery time objective" },
                    "rpo": { "$ref": "#/definitions/duration", "description": "Recovery point objective" }
                }
            },
            "vars": {
                "type": "object",
                "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
                "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
            },
            "secrets": { "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" } },
            "defaults": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "timeout": { "$ref": "#/definitions/duration" },
                    "retry": { "$ref": "#/definitions/retry" }
                }
            },
            "steps": { "type": "array", "minItems": 1, "items": { "$ref": "#/definitions/step" } }
        },
        "definitions": {
            "identifier": identifier,
            "duration": duration,
            "retry": retry,
            "step": step
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_schema_file_matches_the_schema_command() {
        let committed = include_str!("../schema/runbook.schema.json");
        let committed: serde_json::Value = serde_json::from_str(committed).unwrap();
        assert_eq!(
            committed,
            super::runbook_schema(),
            "run `runbook schema > schema/runbook.schema.json`"
        );
    }
}
