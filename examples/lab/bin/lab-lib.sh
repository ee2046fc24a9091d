# lab-lib.sh: shared helpers of the lab's stand-in tools (sourced, not run).
#
# Every tool runs with the current directory set to one server folder
# (examples/lab/servers/<host>, the inventory's runbook_workdir): that folder is
# "this server". Other servers are the sibling folders, reached by name, the
# way a real wrapper reaches another machine by its address.

# A script that sources this from elsewhere (check) sets LAB_BIN first.
LAB_BIN=${LAB_BIN:-$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)}
LAB=$(dirname -- "$LAB_BIN")
SERVERS=$LAB/servers
TOOL=$(basename -- "$0")
SELF=$(basename -- "$PWD")
MODE=${RUNBOOK_MODE:-REAL}
ZONE_SUFFIX=.saitama-coop.example

die() { printf '%s: %s\n' "$TOOL" "$*" >&2; exit "${EXIT:-1}"; }
usage() { EXIT=2 die "usage: $*"; }
say() { printf '%s\n' "$*"; }

# This tool must be run from a server folder of the lab.
in_server() {
    [ "$(dirname -- "$PWD")" = "$SERVERS" ] && [ -f node.conf ] ||
        EXIT=2 die "run me from a server folder under $SERVERS (the host's runbook_workdir); did you run examples/lab/reset?"
}

# server_dir NAME: the folder of another server, or fail as a real tool would
# when the name does not resolve.
server_dir() {
    [ -n "$1" ] && [ -f "$SERVERS/$1/node.conf" ] || die "unknown host: $1"
    printf '%s\n' "$SERVERS/$1"
}

# conf_get FILE KEY / conf_set FILE KEY VALUE: key=value files (node.conf, ...).
conf_get() { [ -f "$1" ] && sed -n "s/^$2=//p" "$1" | tail -n 1; }
conf_set() {
    _tmp=$1.tmp.$$
    { [ -f "$1" ] && grep -v "^$2=" "$1"; printf '%s=%s\n' "$2" "$3"; } > "$_tmp" || true
    mv -f "$_tmp" "$1"
}

# event DIR MESSAGE: what the tool changed, kept in the server's events.log so
# `check` and a curious operator can see who did what (and in which mode).
event() {
    printf '%s %s %s: %s\n' "$MODE" "${RUNBOOK_STEP:--}" "$SELF" "$2" >> "$1/events.log"
}

# answers DIR: does that server answer on the network?
answers() {
    [ "$(conf_get "$1/node.conf" power)" != off ] && [ "$(conf_get "$1/node.conf" state)" = up ]
}

# resolve NAME: the address a name has in the lab's DNS zone (hq-dns), or the
# name itself when it already is an address.
resolve() {
    case $1 in
        *[!0-9.]*) ;;
        *) printf '%s\n' "$1"; return 0 ;;
    esac
    _n=${1%"$ZONE_SUFFIX"}
    awk -v n="$_n" '$1 == n && $3 == "IN" && $4 == "A" { a = $5 } END { if (a == "") exit 1; print a }' \
        "$SERVERS/hq-dns/zone.db"
}

# host_at ADDRESS: the lab server that owns an address.
host_at() {
    for _d in "$SERVERS"/*/; do
        [ "$(cat "$_d/address" 2>/dev/null)" = "$1" ] && { basename -- "$_d"; return 0; }
    done
    return 1
}

# seconds DURATION: 90s, 10m, 2h, 1h30m, or plain seconds.
seconds() {
    _d=$1 _t=0
    case $_d in '' | *[!0-9smh]*) die "bad duration: $1" ;; esac
    while [ -n "$_d" ]; do
        _num=${_d%%[smh]*}
        [ "$_num" = "$_d" ] && { _t=$((_t + _d)); break; }
        _d=${_d#"$_num"}
        case $_d in
            h*) _t=$((_t + _num * 3600)) ;;
            m*) _t=$((_t + _num * 60)) ;;
            s*) _t=$((_t + _num)) ;;
        esac
        _d=${_d#?}
    done
    printf '%s\n' "$_t"
}

# human SECONDS: 6m0s, 14h36m0s.
human() {
    _s=$1
    if [ "$_s" -ge 3600 ]; then printf '%dh%dm%ds\n' $((_s / 3600)) $((_s % 3600 / 60)) $((_s % 60))
    elif [ "$_s" -ge 60 ]; then printf '%dm%ds\n' $((_s / 60)) $((_s % 60))
    else printf '%ds\n' "$_s"; fi
}

sha256() {
    if command -v sha256sum > /dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}

# manifest_check DIR MANIFEST: every file listed has its checksum, and no file
# is missing from the list.
manifest_check() {
    (cd "$1" && sha256 -c "$2" > /dev/null 2>&1) || return 1
    _listed=$(wc -l < "$2")
    _present=$(cd "$1" && find . -type f ! -name '.acl' | wc -l)
    [ "$_listed" -eq "$_present" ]
}
