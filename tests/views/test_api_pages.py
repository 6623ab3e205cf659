"""REST API lists cost the same at any size (issue 12): the count stops at the cap and is exact
on demand, pages by number stop at the cap with a 400 that says how to go on, and ``after``
pages by id through every record in scope, none twice, none missed."""

from __future__ import annotations

from typing import Any

import prison
import pytest

from tests.conftest import statements_run
from views import list_count


@pytest.fixture
def cap_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_count, "COUNT_CAP", 3)


def _list(client: Any, headers: dict, **args: Any) -> Any:
    return client.get(f"/api/v1/customer/?q={prison.dumps(args)}", headers=headers)


def test_a_list_past_the_cap_has_no_total_unless_asked(client: Any, api: Any, make_customer: Any,
                                                       cap_of_three: None) -> None:
    for n in range(5):
        make_customer("rep_a", name=f"Cap {n}")
    make_customer("rep_b", name="Other rep")
    headers = api("rep_a")
    answer = _list(client, headers, page_size=2).get_json()
    assert answer["count"] is None and answer["more_than"] == 3 and len(answer["result"]) == 2
    assert _list(client, headers, page_size=2, exact_count=True).get_json()["count"] == 5
    filtered = _list(client, headers, filters=[{"col": "name", "opr": "ct", "value": "Cap 1"}]).get_json()
    assert filtered["count"] == 1 and "more_than" not in filtered


def test_pages_by_number_stop_at_the_cap_and_say_how_to_go_on(client: Any, api: Any, make_customer: Any,
                                                              cap_of_three: None) -> None:
    for n in range(5):
        make_customer("rep_a", name=f"Cap {n}")
    headers = api("rep_a")
    assert len(_list(client, headers, page_size=2, page=1).get_json()["result"]) == 2  # records 3-4: counted
    deep = _list(client, headers, page_size=2, page=2)
    assert deep.status_code == 400 and deep.get_json()["message"].startswith("Pages by number reach the first 3 ")
    assert _list(client, headers, page_size=2, page=2, exact_count=True).status_code == 400  # counted or not
    small = _list(client, headers, page_size=2, page=2, filters=[{"col": "name", "opr": "ct", "value": "Cap 1"}])
    assert small.status_code == 200 and small.get_json()["result"] == []  # a short list: past its end, empty


def test_after_walks_every_record_in_scope_once(client: Any, api: Any, make_customer: Any,
                                               cap_of_three: None) -> None:
    mine = sorted(make_customer("rep_a", name=f"Walk {n}") for n in range(7))
    theirs = make_customer("rep_b", name="Not mine")
    headers, seen, after = api("rep_a"), [], 0
    while after is not None:
        answer = _list(client, headers, after=after, page_size=3).get_json()
        assert answer["ids"] == sorted(answer["ids"]) and all(i > after for i in answer["ids"])
        seen += answer["ids"]
        after = answer["next_after"]
    assert seen == mine and theirs not in seen
    last = _list(client, headers, after=mine[-1]).get_json()
    assert last["ids"] == [] and last["next_after"] is None
    full_last = _list(client, headers, after=mine[0], page_size=6).get_json()  # the last 6: a full last page
    assert full_last["ids"] == mine[1:] and full_last["next_after"] is None


def test_after_refuses_an_order_by_custom_field(client: Any, api: Any, make_customer: Any,
                                               make_custom_field: Any) -> None:
    """A page ordered by a custom field does not end at its largest id: walking it with
    ``next_after`` would skip and repeat records."""
    make_custom_field("customer", "region", "text")
    make_customer("rep_a", custom={"region": "East"})
    answer = client.get(f"/api/v1/customer/?q={prison.dumps({'after': 0})}&cf_sort=cf_region", headers=api("rep_a"))
    assert answer.status_code == 400 and "cf_sort" in answer.get_json()["message"]


@pytest.mark.parametrize("args", [
    {"after": -1}, {"after": "x"}, {"after": True}, {"after": 1, "page": 2},
    {"after": 1, "order_column": "name"}, {"after": 1, "order_direction": "desc"}, {"exact_count": "yes"},
    {"page": "x"}, {"page_size": [1]}, {"page": -1},  # FAB's argument schema, checked once (``_SchemasCheckedOnce``)
])
def test_wrong_paging_arguments_are_a_400_with_a_message(client: Any, api: Any, make_customer: Any,
                                                         args: dict) -> None:
    make_customer("rep_a")
    answer = _list(client, api("rep_a"), **args)
    assert answer.status_code == 400 and answer.get_json()["message"]
    assert not answer.get_json()["message"].startswith("400")


def test_argument_schemas_are_checked_once_and_still_refuse(client: Any, api: Any, make_customer: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """FAB's ``@rison`` checks each argument schema against the meta-schema once
    (``api_pages._SchemasCheckedOnce``), not with ``jsonschema.validate`` on every request."""
    import jsonschema

    make_customer("rep_a")
    headers = api("rep_a")
    assert _list(client, headers, page_size=5).status_code == 200
    from flask_appbuilder.api.schemas import get_list_schema

    checked: list[Any] = []
    kind = jsonschema.validators.validator_for(get_list_schema)
    monkeypatch.setattr(kind, "check_schema", classmethod(lambda cls, schema, *args, **kwargs: checked.append(schema)))
    monkeypatch.setattr(jsonschema, "validate", lambda *args, **kwargs: pytest.fail("validated per request"))
    assert _list(client, headers, page_size=5).status_code == 200
    assert _list(client, headers, page="x").status_code == 400
    assert checked == []


def test_a_page_reads_the_same_statements_whatever_its_rows(app: Any, client: Any, api: Any, make_customer: Any,
                                                          make_custom_field: Any) -> None:
    """Custom field values come with the page (they were read one query per row)."""
    make_custom_field("customer", "region", "text")
    headers = api("rep_a")

    def page_of(rows: int) -> int:
        for n in range(rows - len(_list(client, headers).get_json()["ids"])):
            make_customer("rep_a", name=f"Row {rows}-{n}", custom={"region": "East"})
        with statements_run(app) as run:
            answer = _list(client, headers).get_json()
        assert len(answer["ids"]) == rows and answer["result"][0]["cf_region"] == "East"
        return len(run)

    assert page_of(2) == page_of(6)


def test_the_openapi_document_describes_after_and_exact_count(client: Any, api: Any) -> None:
    spec = client.get("/api/v1/_openapi", headers=api("admin")).get_json()
    arguments = spec["components"]["schemas"]["get_list_schema"]["properties"]
    assert arguments["after"]["type"] == "integer" and "next_after" in arguments["after"]["description"]
    assert arguments["exact_count"]["type"] == "boolean"
    assert "page_size" in arguments  # FAB's own arguments stay
