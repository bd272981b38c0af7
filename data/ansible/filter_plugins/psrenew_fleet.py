# psrenew: filters of the fleet playbooks: the records each host's psrenew
# commands printed, gathered into the fleet's JSON Lines, CSV and summary.
"""Filters for psrenew-inventory.yml and psrenew-register.yml.

Each host of psrenew-inventory.yml has registered psrenew_read: the output
of its four commands, each one's records followed by a line "#psrenew NAME
rc=STATUS" (NAME: status for ps-status --json, expiring for ps-status
--expiring DAYS, unregistered for ps-status --unregistered, pending for
ps-fetch --pending --dry-run). psrenew-register.yml registers
psrenew_unregistered (ps-status --unregistered --json, a command result).
These filters read them from hostvars on the controller.
"""
import re

import csv
import io
import json

CSV_FIELDS = ["host", "kind", "token_label", "label", "type", "serial_hex",
              "jip_ca", "not_after", "days_left", "state", "has_key",
              "expiring", "unconfirmed", "request_id", "code", "message"]


def _records(result):
    """The JSON Lines records of one registered command result."""
    out = []
    if not isinstance(result, dict) or result.get("skipped"):
        return out
    for line in (result.get("stdout") or "").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = {"kind": "error", "code": "fleet-not-json",
                   "message": "not a JSON record: %s" % line[:200]}
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _failed(result, name, ok_rcs):
    """An error record when the command failed and printed no error record."""
    if not isinstance(result, dict):
        return [{"kind": "error", "code": "fleet-no-result",
                 "message": "%s did not run (host unreachable?)" % name}]
    if result.get("skipped"):
        return []
    rc = result.get("rc")
    recs = _records(result)
    if rc in ok_rcs or any(r.get("kind") == "error" for r in recs):
        return []
    err = (result.get("stderr") or result.get("msg") or "").strip()
    return [{"kind": "error", "code": "fleet-command",
             "message": "%s: exit %s: %s" % (name, rc, err[-400:])}]


MARK = re.compile(r"^#psrenew ([a-z]+) rc=([0-9]+)$")


def _sections(result):
    """psrenew_read split into one command result per NAME (stdout, rc,
    and the stderr of all four)."""
    out = {}
    if not isinstance(result, dict) or "stdout" not in result:
        return out
    lines = []
    for line in (result.get("stdout") or "").splitlines():
        m = MARK.match(line)
        if m:
            out[m.group(1)] = {"stdout": "\n".join(lines),
                               "rc": int(m.group(2)),
                               "stderr": result.get("stderr") or ""}
            lines = []
        else:
            lines.append(line)
    return out


def _key(rec):
    return (rec.get("token"), rec.get("id"), rec.get("serial_hex"))


def host_view(hv, host):
    """One host's records: cert records of ps-status marked expiring and
    unconfirmed, request records of ps-fetch --dry-run, error records."""
    read = hv.get("psrenew_read")
    sec = _sections(read)
    expiring = {_key(r) for r in _records(sec.get("expiring"))
                if r.get("kind") == "cert"}
    unconfirmed = {_key(r) for r in _records(sec.get("unregistered"))
                   if r.get("kind") == "cert"}
    out = []
    for rec in _records(sec.get("status")):
        rec = dict(rec, host=host, source="ps-status")
        if rec.get("kind") == "cert":
            rec["expiring"] = _key(rec) in expiring
            rec["unconfirmed"] = _key(rec) in unconfirmed
        out.append(rec)
    for rec in _records(sec.get("pending")):
        out.append(dict(rec, host=host, source="ps-fetch"))
    if not isinstance(read, dict) or "stdout" not in read:
        detail = read.get("msg", "") if isinstance(read, dict) else ""
        return out + [{"kind": "error", "code": "fleet-no-result",
                       "host": host, "source": "ansible",
                       "message": "the host did not answer %s" % detail}]
    for name, cmd, ok in (("status", "ps-status --json", (0,)),
                          ("expiring", "ps-status --expiring", (0, 3)),
                          ("unregistered", "ps-status --unregistered", (0,)),
                          ("pending", "ps-fetch --pending --dry-run",
                           (0, 3))):
        for rec in _failed(sec.get(name), cmd, ok):
            out.append(dict(rec, host=host, source=name))
    return out


def psrenew_fleet_records(hostvars, hosts):
    """Every record of every host, in host order."""
    out = []
    for host in hosts:
        out.extend(host_view(hostvars[host], host))
    return out


def psrenew_jsonl(records):
    """JSON Lines: one compact record per line, keys sorted."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True,
                              separators=(",", ":")) + "\n"
                   for r in records)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def psrenew_csv(records):
    """CSV (RFC 4180, a header line): one row per certificate, request
    and error; the request's state in the state column."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_FIELDS)
    for r in records:
        w.writerow([_cell(r.get(f)) for f in CSV_FIELDS])
    return buf.getvalue()


def psrenew_summary_rows(records, hosts):
    """Per host: certificates, expiring, pending, unconfirmed, errors."""
    rows = []
    for host in hosts:
        mine = [r for r in records if r.get("host") == host]
        certs = [r for r in mine if r.get("kind") == "cert"]
        rows.append({
            "host": host,
            "certs": len(certs),
            "expiring": sum(1 for r in certs if r.get("expiring")),
            "pending": sum(1 for r in mine if r.get("kind") == "request"),
            "unconfirmed": sum(1 for r in certs if r.get("unconfirmed")),
            "errors": sum(1 for r in mine if r.get("kind") == "error"),
        })
    return rows


def psrenew_summary(records, hosts):
    """The summary as a text table, a TOTAL line last."""
    rows = psrenew_summary_rows(records, hosts)
    cols = ["certs", "expiring", "pending", "unconfirmed", "errors"]
    width = max([len("TOTAL")] + [len(r["host"]) for r in rows])
    lines = ["%-*s  %s" % (width, "HOST",
                           "  ".join("%11s" % c.upper() for c in cols))]
    for r in rows + [dict({c: sum(x[c] for x in rows) for c in cols},
                          host="TOTAL")]:
        lines.append("%-*s  %s" % (width, r["host"],
                                   "  ".join("%11d" % r[c] for c in cols)))
    return "\n".join(lines) + "\n"


def psrenew_register_input(hostvars, hosts):
    """The cert records of ps-status --unregistered of every host with a
    JIP user (psrenew_jip_user), each given that user and its host."""
    out = []
    for host in hosts:
        hv = hostvars[host]
        user = hv.get("psrenew_jip_user") or ""
        if not user:
            continue
        for rec in _records(hv.get("psrenew_unregistered")):
            if rec.get("kind") == "cert":
                out.append(dict(rec, user=user, host=host))
    return out


def psrenew_unregistered_hosts_without_user(hostvars, hosts):
    """Hosts with unregistered certificates but no psrenew_jip_user."""
    return [h for h in hosts
            if not hostvars[h].get("psrenew_jip_user")
            and any(r.get("kind") == "cert"
                    for r in _records(hostvars[h].get("psrenew_unregistered")))]


def psrenew_confirmations(result, wanted):
    """The jip records of ps-jip-setserial's output (result: its command
    result) that confirm a serial of wanted (records of
    psrenew_register_input), each with the host it belongs to."""
    hosts = {}
    for rec in wanted:
        hosts.setdefault(rec.get("serial_hex"), rec.get("host"))
    out = []
    for rec in _records(result):
        if rec.get("kind") != "jip" or rec.get("result") not in ("set",
                                                                 "already-set"):
            continue
        host = hosts.get(rec.get("serial_hex"))
        if host:
            out.append({"host": host, "record": rec})
    return out


def psrenew_records(result):
    """The records of one command result (a list of dicts)."""
    return _records(result)


class FilterModule(object):
    """psrenew's fleet filters."""

    def filters(self):
        return {
            "psrenew_fleet_records": psrenew_fleet_records,
            "psrenew_jsonl": psrenew_jsonl,
            "psrenew_csv": psrenew_csv,
            "psrenew_summary": psrenew_summary,
            "psrenew_summary_rows": psrenew_summary_rows,
            "psrenew_register_input": psrenew_register_input,
            "psrenew_unregistered_hosts_without_user":
                psrenew_unregistered_hosts_without_user,
            "psrenew_confirmations": psrenew_confirmations,
            "psrenew_records": psrenew_records,
        }
