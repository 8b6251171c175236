"""Every decision accounted for, and the two-person rule (issue 26), end to end without a browser.

A real daemon (in this process, fed as its cameras feed it: tests/test_encounters.py's Box) and a real
console (store, CURVE link, the web console's decision path) decide; the box's audit log and
`edge audit report` are read with the real commands. The browser tests (test_console_verify.py) show
the same on the page.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_encounters import Box, Operator, audit_report, records, wait_for

from edge.alerts import verification
from edge.cli import cli
from edge.console import decisions


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.stop()


def one_card(op: Operator, box: Box) -> str:
    box.seen("cam-a", "a-1", 0)
    assert wait_for(lambda: len(op.console.state()["open"]) == 1)
    return op.console.state()["open"][0]["alert_id"]


def test_a_decision_that_loses_a_race_is_told_recorded_with_both_operators_and_reported(box, tmp_path):
    op = Operator(tmp_path, box)
    try:
        alert_id = one_card(op, box)
        op.decide(alert_id, "alice", decision="confirm", action="arrested")
        with pytest.raises(decisions.Refused, match="not counted: alice had already confirmed this encounter "
                                                    r"\(arrested\) at 20\d\d-.* \+00:00"):
            op.decide(alert_id, "bob", decision="dismiss", reason="not the person")
        told = op.console.state("bob")["notices"]
        assert len(told) == 1 and "Your dismissal (not the person) of WL-1 was not counted: alice" in told[0]["text"]
        assert op.console.state("alice")["notices"] == []
        (row,) = op.store.history()
        assert (row["operator"], row["not_counted"]) == ("alice", 1)  # the history says a decision lost
        decisions.read(op.store, "bob", told[0]["decision_id"])
        assert op.console.state("bob")["notices"] == []
        assert wait_for(lambda: len(records(box, "adjudication_refused")) == 1)
    finally:
        op.stop()
    (ref,) = records(box, "adjudication_refused")
    assert (ref["operator"], ref["decision"], ref["decided_by"], ref["decided"]) == ("bob", "dismiss", "alice",
                                                                                     "confirm")
    assert box.daemon.counts.adjudications == 1  # the loser never counts
    rep = audit_report(box)
    assert rep["adjudications_refused"] == 1
    (enc,) = rep["encounters"]
    assert enc["operator"] == "alice" and enc["refused"][0]["operator"] == "bob"
    text = CliRunner().invoke(cli, ["audit", "report", "--config", str(box.config)]).output
    assert "NOT COUNTED: bob dismissed (not the person)" in text and "alice's" in text


@pytest.mark.parametrize("second", ["confirm", "dismiss"])
def test_two_people_verify_a_confirmation_blind_and_a_disagreement_goes_to_a_supervisor(tmp_path, second):
    box = Box(tmp_path)
    box.daemon.cfg.alerts.verification = "two"
    op = Operator(tmp_path, box)
    op.store.add_user("sam", "supervisor password", "supervisor")
    try:
        assert wait_for(lambda: op.link.verification() == "two")  # the box's hello says its rule
        alert_id = one_card(op, box)
        assert op.decide(alert_id, "alice", decision="confirm", action="arrested")["verification"] == "first"
        seen_by_bob = op.console.state("bob")["open"][0]["verification"]
        assert seen_by_bob == {"policy": "two", "stage": "second", "by": ["alice"]}  # blind: not what she chose
        with pytest.raises(Exception, match="a second, different operator must verify it"):
            op.decide(alert_id, "alice", decision="confirm", action="arrested")
        out = op.decide(alert_id, "bob", decision=second, action="arrested", reason="not the person")
        if second == "dismiss":
            assert out["verification"] == "disagreed"
            st = op.console.state("sam")["open"][0]["verification"]
            assert st["stage"] == "supervisor" and st["may_decide"] and len(st["people"]) == 2
            with pytest.raises(Exception, match="only a supervisor"):
                op.decide(alert_id, "carol", decision="dismiss", reason="not the person")
            op.decide(alert_id, "sam", decision="dismiss", reason="not the person")
        assert wait_for(lambda: box.daemon.counts.adjudications == 1)
        assert op.store.history()[0]["verified_by"] == "alice (first), bob (second)" + (
            ", sam (supervisor)" if second == "dismiss" else "")
    finally:
        op.stop()
        box.stop()
    (adj,) = records(box, "adjudication")
    people = [(v["operator"], v["decision"], v["role"]) for v in adj["verifications"]]
    expect = [("alice", "confirm", "first"), ("bob", second, "second")] + (
        [("sam", "dismiss", "supervisor")] if second == "dismiss" else [])
    assert people == expect and all(v["time"] for v in adj["verifications"])
    text = CliRunner().invoke(cli, ["audit", "report", "--config", str(box.config)]).output
    assert "verified (first): alice confirmed (arrested)" in text
    assert f"verified (second): bob {'confirmed (arrested)' if second == 'confirm' else 'dismissed (not the person)'}" \
        in text


def test_a_box_under_two_refuses_a_confirmation_one_person_made():
    one = {"decision": "confirm", "operator": "alice"}
    assert "two different operators" in verification.refusal("two", one)
    assert verification.refusal("one", one) == ""
    same = dict(one, verifications=[verification.entry("alice", "confirm", "arrested", "", "t", r)
                                    for r in ("first", "second")])
    assert "two different operators" in verification.refusal("two", same)
    sup = dict(one, operator="alice", verifications=[
        verification.entry("alice", "confirm", "arrested", "", "t", "first"),
        verification.entry("bob", "dismiss", "", "not the person", "t", "second"),
        verification.entry("alice", "confirm", "arrested", "", "t", "supervisor")])
    assert "only a supervisor" in verification.refusal("two", sup)  # a verifier cannot settle her own dispute


def test_the_queue_is_grouped_by_person_in_category_priority_then_waiting_time():
    from edge.console.web import by_person

    card = lambda ref, cat, t: {"box_id": "b", "ref": ref, "category": cat, "received": t}  # noqa: E731
    cards = [card("A", "other", 1), card("B", "known offender", 2), card("C", "wanted", 5), card("A", "other", 3),
             card("D", "wanted", 4), card("B", "known offender", 6), card("E", "missing person", 7)]
    assert [(c["ref"], c["received"]) for c in by_person(cards)] == [
        ("D", 4), ("C", 5), ("E", 7), ("B", 2), ("B", 6), ("A", 1), ("A", 3)]


def test_the_page_uses_no_glyph_that_needs_an_emoji_font():
    """Every character the console's pages write is ASCII or plain punctuation every text font has (an
    OVERDUE alarm clock rendered as an empty box on the control room's screens)."""
    from pathlib import Path

    import edge.console

    allowed = set("·—…–")
    static = Path(edge.console.__file__).parent / "static"
    found = {(f.name, c) for f in static.iterdir() for c in f.read_text(encoding="utf-8") if ord(c) > 127
             and c not in allowed}
    assert not found, sorted(found)


def test_a_verification_policy_other_than_one_or_two_is_refused_in_one_sentence():
    from edge import config
    from edge.errors import EdgeError

    base = 'box_id = "b"\nstate_dir = "/tmp/x"\n[[cameras]]\nid = "c"\nsource = "a.mp4"\n[alerts]\n'
    assert config.parse(base + 'verification = "two"\n').alerts.verification == "two"
    with pytest.raises(EdgeError, match='alerts.verification.*"one" or "two"'):
        config.parse(base + 'verification = "2"\n')


def test_an_unknown_console_time_zone_is_refused_in_one_sentence(tmp_path):
    r = CliRunner().invoke(cli, ["console", "--box", "tcp://127.0.0.1:1=box.pub.json", "--timezone", "Mars/Phobos",
                                 "--data", str(tmp_path)])
    assert r.exit_code != 0 and "unknown time zone 'Mars/Phobos'" in r.output and "Traceback" not in r.output


def test_a_first_verification_left_waiting_when_the_rule_lapses_is_told_not_lost(box, tmp_path):
    op = Operator(tmp_path, box)
    try:
        box.daemon.cfg.alerts.verification = "two"
        assert wait_for(lambda: op.link.verification() == "two")
        alert_id = one_card(op, box)
        op.decide(alert_id, "alice", decision="confirm", action="arrested")
        box.daemon.cfg.alerts.verification = "one"  # the window that required two people has closed
        assert wait_for(lambda: op.link.verification() == "one")
        op.decide(alert_id, "bob", decision="dismiss", reason="not the person")
        (told,) = op.console.state("alice")["notices"]
        assert "not counted: the box's rule became one operator, and bob decided the encounter alone" in told["text"]
        assert wait_for(lambda: len(records(box, "adjudication_refused")) == 1)
    finally:
        op.stop()
    assert records(box, "adjudication_refused")[0]["operator"] == "alice"
