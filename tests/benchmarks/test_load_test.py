"""``benchmarks/load_test.py`` at reduced size: the real server command under concurrent clients,
every kind of bad request included (40 requests: every fifth is bad, eight kinds)."""

from benchmarks import load_test


def test_reduced_load_test_passes(capsys):
    assert len(load_test.bad_cases(4)) == 8  # 40 requests send each bad kind once
    code = load_test.main(["--requests", "40", "--clients", "2", "--max-tokens", "4"])
    printed = capsys.readouterr().out
    assert "0 wrong, 0 without a response" in printed, printed
    assert "7 (each with its expected error code)" in printed  # and one client hangs up:
    assert "1 (server kept serving)" in printed
    assert code == 0 and "result: PASS" in printed
