"""Collector admission: a rate per key (429 + Retry-After) and a bound on work in progress (503 + Retry-After)."""

from __future__ import annotations

from streams.admission import Admission, TokenBucket


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20)
    assert [bucket.take(0.0) for _ in range(20)] == [0.0] * 20
    assert bucket.take(0.0) == 0.1  # one token comes every 0.1 s
    assert bucket.take(0.1) == 0.0
    assert bucket.take(0.1) > 0
    assert bucket.take(5.0) == 0.0  # refilled (up to the burst) while idle


def test_each_key_has_its_own_rate_and_the_retry_after_is_whole_seconds() -> None:
    admission = Admission(rate_per_key=2, burst_seconds=1.0)
    assert admission.admit("a", 0.0) is None and admission.admit("a", 0.0) is None
    refused = admission.admit("a", 0.0)
    assert refused is not None and (refused.status, refused.error, refused.retry_after) == (429, "rate_limited", 1)
    assert "2 requests/s" in refused.detail
    assert admission.admit("b", 0.0) is None  # another key is not affected
    assert admission.admit("a", 0.6) is None


def test_too_much_in_progress_or_queued_is_503_for_everyone() -> None:
    admission = Admission(rate_per_key=0, max_in_progress=2, max_queued=100)
    assert admission.admit("a", 0.0) is None and admission.admit("b", 0.0) is None
    busy = admission.admit("c", 0.0)
    assert busy is not None and (busy.status, busy.error, busy.retry_after) == (503, "overloaded", 1)
    assert "requests in progress" in busy.detail
    admission.done()
    assert admission.admit("c", 0.0) is None
    admission.done(), admission.done()
    queued = admission.admit("a", 0.0, queued=100)
    assert queued is not None and "messages queued for Kafka" in queued.detail
    admission.done()
    assert admission.in_progress == 0
