"""The link state machine and the proxy-login rules as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ppa_contracts.linking import (
    LinkApproved,
    LinkOwner,
    LinkProduct,
    LinkRejected,
    LinkRequested,
    LinkRevoked,
    ProxyEndReason,
    ProxyLoginEnded,
    ProxyLoginStarted,
    ProxyRefusal,
    RevokeReason,
)
from ppa_linking.domain.links import (
    AlreadyDecided,
    LinkNotFound,
    LinkStatus,
    Pair,
    Recorded,
    approve,
    fold,
    reject,
    request,
    revoke,
)
from ppa_linking.domain.proxy import end_reason, fold_session, start_refusal

T0 = datetime(2024, 4, 27, 7, 3, 15, tzinfo=UTC)
OWNER = LinkOwner(owner_id="o1", email="taro_nichicon@nichicon.com", name="日見 太郎", name_kana="ニチコン タロウ",
                  prefecture="東京都", city="中央区", street="日本橋兜町")
PRODUCT = LinkProduct(product_id="96", system_model="ESS-U4X1", system_serial="HC-A10001WN1")


def history(*steps):
    """Apply command results one after another, as the service does; returns the folded pair."""
    events = []
    pair = Pair()
    for step in steps:
        events += [Recorded(e, T0 + timedelta(minutes=len(events)), f"cause-{len(events)}") for e in step(pair)]
        pair = fold(events)
    return pair


def grant(link_id: str):
    return lambda pair: request(pair, link_id, "test@nichicon.com", OWNER, [PRODUCT], "ag1")


def test_a_grant_opens_a_pending_request_with_the_owner_and_products():
    pair = history(grant("186"))
    link = pair.current
    assert link.link_id == "186" and link.status is LinkStatus.PENDING and pair.version == 1
    assert link.owner.name == "日見 太郎" and link.products[0].system_serial == "HC-A10001WN1"
    assert link.agency_id == "ag1" and link.requested_at == T0


@pytest.mark.parametrize("decided", [None, "approve"])
def test_a_repeat_grant_of_an_open_link_changes_nothing(decided):
    steps = [grant("186")] + ([lambda p: approve(p, "186")] if decided else [])
    pair = history(*steps)
    assert request(pair, "187", "test@nichicon.com", OWNER, [], "ag1") == []


def test_a_grant_delivered_again_after_a_decision_opens_nothing():
    events = [Recorded(e, T0, "grant-1") for e in grant("186")(Pair())]
    events += [Recorded(e, T0, None) for e in reject(fold(events), "186")]
    pair = fold(events)
    assert request(pair, "187", "test@nichicon.com", OWNER, [], "ag1", cause="grant-1") == []
    assert request(pair, "187", "test@nichicon.com", OWNER, [], "ag1", cause="grant-2")[0].link_id == "187"


def test_approve_and_reject_apply_to_a_pending_link_only_once():
    approved = history(grant("186"), lambda p: approve(p, "186"))
    assert approved.current.status is LinkStatus.APPROVED and approved.current.decided_at is not None
    with pytest.raises(AlreadyDecided) as again:
        approve(approved, "186")
    assert again.value.status is LinkStatus.APPROVED
    with pytest.raises(AlreadyDecided):
        reject(approved, "186")
    rejected = history(grant("186"), lambda p: reject(p, "186"))
    assert rejected.current.status is LinkStatus.REJECTED
    with pytest.raises(AlreadyDecided) as after_reject:
        approve(rejected, "186")
    assert after_reject.value.status is LinkStatus.REJECTED


def test_a_decision_names_an_existing_link():
    with pytest.raises(LinkNotFound):
        approve(history(grant("186")), "999")


@pytest.mark.parametrize("decide", [None, "approve"])
def test_withdrawal_revokes_an_open_link_and_blocks_its_decision(decide):
    steps = [grant("186")] + ([lambda p: approve(p, "186")] if decide else [])
    pair = history(*steps, lambda p: revoke(p, RevokeReason.OWNER_WITHDREW))
    assert pair.current.status is LinkStatus.REVOKED
    events = revoke(history(*steps), RevokeReason.OWNER_WITHDREW)
    assert isinstance(events[0], LinkRevoked) and events[0].was == ("approved" if decide else "pending")
    with pytest.raises(AlreadyDecided) as refused:
        approve(pair, "186")
    assert refused.value.status is LinkStatus.REVOKED
    assert revoke(pair, RevokeReason.OWNER_WITHDREW) == []  # a repeat withdrawal does nothing


def test_withdrawal_after_rejection_changes_nothing():
    pair = history(grant("186"), lambda p: reject(p, "186"))
    assert revoke(pair, RevokeReason.OWNER_WITHDREW) == []


@pytest.mark.parametrize("end", ["reject", "revoke"])
def test_a_grant_after_rejection_or_revocation_opens_a_new_link(end):
    close = (lambda p: reject(p, "186")) if end == "reject" else (lambda p: revoke(p, RevokeReason.OWNER_WITHDREW))
    pair = history(grant("186"), close, grant("190"))
    assert [link.link_id for link in pair.links] == ["186", "190"]
    assert pair.current.status is LinkStatus.PENDING and pair.link("186").status is not LinkStatus.PENDING
    assert pair.version == 3


def test_events_carry_the_pair_and_link_ids():
    pair = history(grant("186"))
    for event in approve(pair, "186") + reject(pair, "186"):
        assert (event.link_id, event.agency_id, event.owner_id) == ("186", "ag1", "o1")
    assert isinstance(approve(pair, "186")[0], LinkApproved) and isinstance(reject(pair, "186")[0], LinkRejected)
    assert isinstance(grant("1")(Pair())[0], LinkRequested)


# proxy login ─────────────────────────────────────────────────────────────────────────────────


def started(expires_in=timedelta(hours=1)) -> ProxyLoginStarted:
    return ProxyLoginStarted(session_id="s1", link_id="186", agency_id="ag1", agency_email="test@nichicon.com",
                             owner_id="o1", at=T0, expires_at=T0 + expires_in, source_ip="192.0.2.1")


def test_only_an_approved_link_of_the_same_agency_allows_proxy_login():
    pending = history(grant("186")).current
    approved = history(grant("186"), lambda p: approve(p, "186")).current
    rejected = history(grant("186"), lambda p: reject(p, "186")).current
    revoked = history(grant("186"), lambda p: approve(p, "186"),
                      lambda p: revoke(p, RevokeReason.OWNER_WITHDREW)).current
    assert start_refusal(approved, "ag1", inside_proxy=False) is None
    assert start_refusal(pending, "ag1", False) is ProxyRefusal.NOT_APPROVED
    assert start_refusal(rejected, "ag1", False) is ProxyRefusal.NOT_APPROVED
    assert start_refusal(revoked, "ag1", False) is ProxyRefusal.REVOKED
    assert start_refusal(approved, "other-agency", False) is ProxyRefusal.NOT_FOUND
    assert start_refusal(None, "ag1", False) is ProxyRefusal.NOT_FOUND
    assert start_refusal(approved, "ag1", inside_proxy=True) is ProxyRefusal.NESTED


def test_a_session_lives_until_it_expires_its_link_ends_or_it_is_ended():
    link = history(grant("186"), lambda p: approve(p, "186")).current
    session = fold_session([started()])
    assert session.version == 1 and not session.ended
    assert end_reason(session, link, T0 + timedelta(minutes=59)) is None
    assert end_reason(session, link, T0 + timedelta(hours=1)) is ProxyEndReason.EXPIRED
    revoked = history(grant("186"), lambda p: approve(p, "186"),
                      lambda p: revoke(p, RevokeReason.OWNER_WITHDREW)).current
    assert end_reason(session, revoked, T0) is ProxyEndReason.REVOKED
    newer = history(grant("186"), lambda p: revoke(p, RevokeReason.OWNER_WITHDREW), grant("190"),
                    lambda p: approve(p, "190")).current
    assert end_reason(session, newer, T0) is ProxyEndReason.REVOKED  # a later link does not revive it
    ended = fold_session([started(), ProxyLoginEnded(session_id="s1", link_id="186", agency_id="ag1", owner_id="o1",
                                                     at=T0, reason=ProxyEndReason.ENDED_BY_OWNER)])
    assert ended.ended and ended.version == 2 and end_reason(ended, link, T0) is ProxyEndReason.ENDED_BY_OWNER


def test_only_the_first_end_of_a_session_counts():
    first = ProxyLoginEnded(session_id="s1", link_id="186", agency_id="ag1", owner_id="o1", at=T0,
                            reason=ProxyEndReason.LOGOUT)
    later = first.model_copy(update={"reason": ProxyEndReason.EXPIRED, "at": T0 + timedelta(hours=2)})
    session = fold_session([started(), first, later])
    assert session.end_reason is ProxyEndReason.LOGOUT and session.ended_at == T0 and session.version == 3


def test_a_replayed_old_withdrawal_does_not_end_a_later_link():
    """Owner stream: v2 grant, v3 withdrawal, v4 grant again. Replaying v3 (a rebuild) leaves link 190 open."""
    events = [Recorded(e, T0, "g2") for e in request(Pair(), "186", "a@x.jp", OWNER, [], "ag1", "g2", grant_version=2)]
    events += [Recorded(e, T0, "w3") for e in revoke(fold(events), RevokeReason.OWNER_WITHDREW, 3)]
    events += [Recorded(e, T0, "g4") for e in request(fold(events), "190", "a@x.jp", OWNER, [], "ag1", "g4", 4)]
    pair = fold(events)
    assert pair.current.link_id == "190" and pair.latest_grant == 4
    assert revoke(pair, RevokeReason.OWNER_WITHDREW, withdrawal_version=3) == []
    assert revoke(pair, RevokeReason.OWNER_WITHDREW, withdrawal_version=5)[0].link_id == "190"
    # and replayed grants older than the newest one open nothing, whatever their event id
    assert request(pair, "191", "a@x.jp", OWNER, [], "ag1", cause="replayed-id", grant_version=2) == []
    closed = fold(events + [Recorded(e, T0, "w5") for e in revoke(pair, RevokeReason.OWNER_WITHDREW, 5)])
    assert request(closed, "191", "a@x.jp", OWNER, [], "ag1", cause="g4-again", grant_version=4) == []
    assert request(closed, "191", "a@x.jp", OWNER, [], "ag1", cause="g6", grant_version=6)[0].grant_version == 6
