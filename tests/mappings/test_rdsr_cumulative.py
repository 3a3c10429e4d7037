"""Cumulative re-sends and continued studies: summary identity, supersedes, merging ImagingStudy."""

from __future__ import annotations

from mappings.rdsr import map_dose_report, merge_imaging_study, summary_event_uids, supersedes
from tests.mappings import rdsr_factory as f
from tests.mappings.rdsr_checks import by_event_uid, component_value, resources, summary


def report(events, n=7, dlp_total=None):
    total = dlp_total or str(400.0 * len(events))
    ds = f.ct_report(n=n, events=[f.ct_event(e) for e in events], dlp_total=total)
    ds.SOPInstanceUID = f.uid(f"sop-{n}-{'-'.join(map(str, events))}")
    ds.SeriesInstanceUID = f.uid(f"series-{n}-{'-'.join(map(str, events))}")
    return map_dose_report(ds)


def test_cumulative_resends_share_the_summary_key_and_grow():
    first, second, third = report([1]), report([1, 2]), report([1, 2, 3])
    assert first.summary_identifier == second.summary_identifier == third.summary_identifier
    assert supersedes(third, first.event_uids) and supersedes(third, second.event_uids)
    assert not supersedes(first, third.event_uids)
    assert supersedes(third, third.event_uids)  # the same report again is idempotent
    # events repeated in re-sends are the same Observations (same conditional URL, same fullUrl)
    urls = {e["fullUrl"] for e in first.bundle["entry"]} & {e["fullUrl"] for e in third.bundle["entry"]}
    assert set(by_event_uid(first.bundle)) <= set(by_event_uid(third.bundle))
    assert len(urls) >= 1 + len(first.event_uids)
    assert component_value(summary(third.bundle), "113813") == 1200


def test_continued_reports_keep_separate_summaries():
    a, b = report([1, 2], n=8), report([3, 4], n=8)
    assert a.study_instance_uid == b.study_instance_uid
    assert a.summary_identifier != b.summary_identifier
    assert not a.event_uids & b.event_uids


def test_late_smaller_report_can_drop_its_summary():
    old = report([1])
    stored = summary(report([1, 2]).bundle)
    assert summary_event_uids(stored) == {f.uid("ct-event-1"), f.uid("ct-event-2")}
    assert not supersedes(old, summary_event_uids(stored))
    trimmed = old.without_summary()
    kinds = [e["resource"]["code"]["coding"][0]["code"] for e in trimmed.bundle["entry"]
             if e["resource"]["resourceType"] == "Observation"]
    assert "73569-6" not in kinds and len(kinds) == 1
    assert trimmed.summary_identifier is None


def test_merge_imaging_study_keeps_both_series():
    a, b = report([1, 2], n=9), report([3, 4], n=9)
    stored = resources(a.bundle, "ImagingStudy")[0]
    incoming = resources(b.bundle, "ImagingStudy")[0]
    merged = merge_imaging_study(stored, incoming)
    assert {s["uid"] for s in merged["series"]} == {stored["series"][0]["uid"], incoming["series"][0]["uid"]}
    assert {s["uid"] for s in merge_imaging_study(merged, incoming)["series"]} == {s["uid"] for s in merged["series"]}
    assert merge_imaging_study(merged, merged) == merged
