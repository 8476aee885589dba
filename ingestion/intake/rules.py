"""The catalogue of intake rules: every reason a file, row or value is quarantined, once.

Each rule has an id (what a quarantine record carries), a category, a message template and a
one-line summary of what the data manager does about it. The engine builds its messages from
the templates (in Python with `message`, in SQL with `sql_message`), `Issue` refuses a rule id or
category that is not here, the README's rule table is checked against it by a test, and dbt
reads it (`stg_intake__rules`) so that `fct_quarantine` names each rule's remedy.

A template's `{fields}` are filled by the caller; file-level rules whose wording depends on the
format (a REDCap header, an SPSS variable list) carry their detail in `{detail}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Rule:
    rule_id: str
    category: str
    template: str
    summary: str
    level: str  # file | row | value | record | client

    def fields(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.template)


_RULES = [
    # Whole files.
    Rule("file.encoding", "encoding", "{detail}", "The file is not in the site's configured "
         "encoding: export it again as UTF-8 (or set the site's encoding).", "file"),
    Rule("file.empty", "parse", "the file is empty", "The delivery holds no data: export again.",
         "file"),
    Rule("file.csv", "parse", "{detail}", "The file is not a readable delimited text file.",
         "file"),
    Rule("file.truncated", "parse",
         "the export is incomplete: {what}. A cut-off snapshot would retract the records it lost, "
         "so the whole file is rejected and the site's data stay as they were; deliver the "
         "complete export again.",
         "The upload was cut off: deliver the complete export again.", "file"),
    Rule("file.sav_unreadable", "parse", "{detail}",
         "Not a readable SPSS .sav file: save it again from SPSS and deliver it.", "file"),
    Rule("file.missing_columns", "schema", "{detail}",
         "Columns the site's map needs are not in the export: fix the export or the column map.",
         "file"),
    Rule("file.duplicate_columns", "schema", "columns repeated: {dupes}",
         "The header names a column twice: export again.", "file"),
    Rule("file.qualtrics_header", "schema",
         "fewer than the three Qualtrics header rows (name, question text, ImportId)",
         "Export the Qualtrics CSV with its three header rows.", "file"),
    Rule("file.qualtrics_import_ids", "schema",
         "the third header row holds no ImportIds: export the CSV from Qualtrics with its three "
         "header rows", "Export the Qualtrics CSV with its ImportId header row.", "file"),
    Rule("file.data_dictionary", "schema", "{detail}",
         "The export does not match the site's REDCap data dictionary (or the dictionary is "
         "unreadable).", "file"),
    Rule("file.data_dictionary_encoding", "encoding", "{detail}",
         "The REDCap data dictionary is not UTF-8: download it again.", "file"),
    Rule("file.symlink", "archive",
         "this is a symbolic link (or lies behind one); links are never followed, so it was not "
         "read. Deliver the file itself into the site's inbox.",
         "A link in the inbox: deliver the file itself.", "file"),
    Rule("file.unsupported_type", "schema", "{detail}",
         "No reader takes this file: it matches none of the site's file patterns.", "file"),
    Rule("archive.unreadable", "archive", "{detail}", "Not a readable zip archive.", "file"),
    Rule("archive.too_many_members", "archive", "{detail}",
         "The zip holds more members than the site's limit.", "file"),
    Rule("archive.unsafe_path", "archive", "{detail}",
         "A zip member's path would escape its folder.", "file"),
    Rule("archive.symlink", "archive", "{detail}", "A zip member is a symbolic link.", "file"),
    Rule("archive.too_large", "archive", "{detail}",
         "The zip expands beyond the site's limit (zip bomb guard).", "file"),
    Rule("archive.data_members", "archive", "{detail}",
         "A zip must hold exactly one export matching the site's member pattern.", "file"),
    Rule("archive.encrypted", "archive", "{detail}", "A zip member is encrypted.", "file"),
    Rule("snapshot.mass_retraction", "conflict",
         "this full export would retract {retracted} of the site's {live} current "
         "administrations (limit {limit}); it is treated as a broken export and nothing from it "
         "is applied. Re-export, or raise max_retraction_fraction for this site if the "
         "deletions are real.",
         "A full export lacks more of the stored records than the site allows: re-export.",
         "file"),
    # One row of a file (every questionnaire on it).
    Rule("row.field_count", "parse", "{detail}",
         "A line with a different number of fields than the header.", "row"),
    Rule("row.unknown_measure", "schema",
         "measure {label} is not in the site's measure map ({known}); add it, or list it in "
         "skip_measures", "A long table's measure the site did not map.", "row"),
    Rule("row.client_code_blank", "identity",
         "client code is blank: the administration cannot be attributed to a client",
         "The row names no client.", "row"),
    Rule("row.client_code_control", "identity",
         "client code contains a control character (such as NUL or ESC): it is not taken as a "
         "new client; the row is held, and the client's stored records stay, until the site "
         "fixes it", "A client code holds a control character: fix it at the site.", "row"),
    Rule("row.session_event", "schema",
         "event name does not match the site's session pattern {pattern}",
         "The event/session cell does not match the site's session pattern.", "row"),
    Rule("row.therapist_code_blank", "identity",
         "therapist code is blank: the client would be nested under no therapist (the site "
         "can make it optional: required_fields.therapist_code: false)",
         "The row names no therapist (required unless the site makes it optional).", "row"),
    Rule("row.session_number", "schema",
         "the session number the pattern captured is not a whole number of 1 or more",
         "The session number is not a whole number >= 1, whatever the site's pattern.", "row"),
    Rule("row.session_date_format", "date",
         "session date is blank or not in the format {date_format}",
         "The session date is blank or not in the site's date format.", "row"),
    Rule("row.session_date_future", "date",
         "session date is after {bound}",
         "The session date lies after the file's delivery date (from its name, when the site "
         "configures delivery_date) or else the night it was ingested.", "row"),
    Rule("response.unfinished", "schema",
         "response not finished (Finished {finished}, Progress {progress} %); only final "
         "responses count: {rule}",
         "A Qualtrics response that is not final under the site's rule (final_when).", "row"),
    Rule("form.not_complete", "schema",
         "{instrument} has form status {status} ({status_label}); only {counting} counts: mark "
         "the form complete in REDCap", "A REDCap form whose status is not Complete.", "row"),
    # One value of a questionnaire.
    Rule("item.non_numeric", "type", "{instrument} item {k} is not a number",
         "An item cell that is not a number.", "value"),
    Rule("item.out_of_range", "range",
         "{instrument} item {k} must be {item_min}-{item_max} in steps of {item_step}",
         "An item value outside the instrument's scale (from the registry).", "value"),
    # One administration, as a whole.
    Rule("item.too_many_missing", "completeness",
         "{instrument} has {blanks} of {items} items missing; the scoring policy allows at most "
         "{max_missing}, so it cannot be scored and is not stored",
         "More items missing than the scoring policy in force allows: the administration cannot "
         "be scored.", "record"),
    # One administration among the file's others.
    Rule("record.conflicting_duplicate", "conflict",
         "the file holds different versions of {instrument} for this client and session "
         "{session}; none is taken until the site resolves it",
         "Two different versions of one administration in one file: none is taken.", "record"),
    Rule("record.exact_duplicate", "duplicate",
         "exact repeat of {instrument} session {session} for this client; the first copy was "
         "taken", "An exact repeat within one file: the first copy is taken.", "record"),
    # The client.
    Rule("client.consent_withdrawn", "identity",
         "this client withdrew consent or was erased; the delivered values are not stored",
         "The client withdrew consent: delivered values are not stored.", "client"),
    Rule("client.client_erased", "identity",
         "this client withdrew consent or was erased; the delivered values are not stored",
         "The client was erased: delivered values are not stored.", "client"),
    Rule("withdrawal.client_code_blank", "identity", "withdrawal row has no client code",
         "A withdrawal-list row with no client code.", "row"),
    Rule("withdrawal.client_code_control", "identity",
         "withdrawal client code contains a control character (such as NUL): it names no client "
         "safely; send the code again without it",
         "A withdrawal-list client code with a control character.", "row"),
]  # fmt: skip

RULES: dict[str, Rule] = {r.rule_id: r for r in _RULES}


def rule(rule_id: str) -> Rule:
    try:
        return RULES[rule_id]
    except KeyError:
        raise ValueError(f"{rule_id!r} is not in the intake rule catalogue") from None


def message(rule_id: str, **values: object) -> str:
    """The rule's message with its fields filled in."""
    return rule(rule_id).template.format(**values)


def sql_message(rule_id: str, **exprs: str) -> str:
    """The rule's message as a SQL expression; each field's value is a SQL expression."""
    parts = re.split(r"({\w+})", rule(rule_id).template)
    sql = []
    for part in parts:
        if not part:
            continue
        if part.startswith("{") and part.endswith("}"):
            sql.append(f"CAST({exprs[part[1:-1]]} AS VARCHAR)")
        else:
            sql.append("'" + part.replace("'", "''") + "'")
    return "(" + " || ".join(sql) + ")"


def rules_table() -> pa.Table:
    """The catalogue as the table dbt reads (`stg_intake__rules`)."""
    return pa.table(
        {
            "rule_id": [r.rule_id for r in _RULES],
            "category": [r.category for r in _RULES],
            "level": [r.level for r in _RULES],
            "summary": [r.summary for r in _RULES],
        }
    )


def markdown() -> str:
    """The catalogue as the README's table (`python -m ingestion.intake.rules` prints it)."""
    lines = ["| rule | category | level | meaning |", "|---|---|---|---|"]
    for r in _RULES:
        lines.append(f"| `{r.rule_id}` | {r.category} | {r.level} | {r.summary} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
