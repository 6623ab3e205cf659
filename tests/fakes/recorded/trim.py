"""How the files here were made from gspread's cassettes (kept so they can be made again).

    python tests/fakes/recorded/trim.py <gspread checkout>/tests/cassettes NAME.json ...

For each cassette: its last recorded episode (a cassette may hold several runs of one test,
each starting with the Drive call that creates a fresh spreadsheet); only the Sheets API
calls (Drive calls and every header dropped); a spreadsheet's metadata answer keeps
``spreadsheetId``, ``properties`` title / locale / timeZone, ``sheets`` and ``spreadsheetUrl``
(Google's default formats and theme are left out).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def episodes(interactions: list[dict]) -> list[list[dict]]:
    """The cassette's runs: a new one starts at each Drive "create file" call."""
    runs: list[list[dict]] = []
    for item in interactions:
        request = item["request"]
        if request["method"] == "POST" and request["uri"].startswith("https://www.googleapis.com/drive/v3/files?"):
            runs.append([])
        if runs:
            runs[-1].append(item)
    return runs


def trimmed(item: dict) -> dict:
    body = item["response"]["body"]["string"]
    try:
        answer = json.loads(body)
    except ValueError:
        answer = body
    if isinstance(answer, dict) and "properties" in answer and "sheets" in answer:
        props = answer["properties"]
        answer = {"spreadsheetId": answer["spreadsheetId"],
                  "properties": {key: props[key] for key in ("title", "locale", "timeZone") if key in props},
                  "sheets": answer["sheets"], "spreadsheetUrl": answer.get("spreadsheetUrl")}
    request = item["request"]
    return {"request": {"method": request["method"], "uri": request["uri"], "body": request.get("body")},
            "response": {"status": {"code": item["response"]["status"]["code"]},
                         "body": {"string": json.dumps(answer, ensure_ascii=False)}}}


def main(folder: str, names: list[str]) -> None:
    here = Path(__file__).parent
    for name in names:
        cassette = json.loads((Path(folder) / name).read_text())
        last = episodes(cassette["interactions"])[-1]
        kept = [trimmed(i) for i in last if i["request"]["uri"].startswith("https://sheets.googleapis.com/")]
        out = {"source": f"gspread tests/cassettes/{name}", "version": cassette.get("version"), "interactions": kept}
        (here / name).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
