from minigptv2 import hardware


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(hardware.Path, "read_text", lambda self: "flags : avx2 avx512_bf16")
    assert hardware.native_bf16()
    monkeypatch.setattr(hardware.Path, "read_text", lambda self: "flags : avx2 amx_bf16")
    assert hardware.native_bf16()
    monkeypatch.setattr(hardware.Path, "read_text", lambda self: "flags : avx2 fma")
    assert not hardware.native_bf16()
