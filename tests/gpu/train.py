#!/usr/bin/env python3
"""GPU test 5 (PyTorch): a small deterministic training loop whose per-step losses, printed
with float.hex, must be the same whether or not the program migrated mid-training.

    train.py [--steps 300] [--step-ms 20] [--width 1024] [--batch 512] [--bench SECONDS]

It prints the line protocol of tests/gpu/gputest.h (uuid, ptr, ready). With --bench it
prints nothing but steps per second, measured over that many seconds after a warm-up.
"""
import argparse
import ctypes
import os
import sys
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
import torch  # noqa: E402


def uuid_line(when):
    """The UUID the driver reports for the current context's device (not a cached one)."""
    cuda = ctypes.CDLL("libcuda.so.1")
    dev = ctypes.c_int()
    raw = (ctypes.c_ubyte * 16)()
    for call, args in (("cuCtxGetDevice", (ctypes.byref(dev),)),
                       ("cuDeviceGetUuid_v2", (raw, dev))):
        rc = getattr(cuda, call)(*args)
        if rc:
            sys.exit(f"{call}: CUresult {rc}")
    h = bytes(raw).hex()
    print(f"uuid {when} GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--step-ms", type=int, default=20)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--bench", type=float, default=0)
    a = ap.parse_args()

    torch.manual_seed(1234)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda:0")
    torch.cuda.set_device(dev)

    g = torch.Generator().manual_seed(42)
    n = a.batch * 16
    x = torch.randn(n, 256, generator=g)
    w = torch.randn(256, 10, generator=g)
    y = (x @ w + 0.1 * torch.randn(n, 10, generator=g)).argmax(1)
    x, y = x.to(dev), y.to(dev)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, a.width), torch.nn.GELU(),
        torch.nn.Linear(a.width, a.width), torch.nn.GELU(),
        torch.nn.Linear(a.width, 10)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        lo = (i * a.batch) % n
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x[lo:lo + a.batch]), y[lo:lo + a.batch])
        loss.backward()
        opt.step()
        return loss

    if a.bench:
        for i in range(20):
            step(i)
        torch.cuda.synchronize()
        t0, i = time.perf_counter(), 0
        while time.perf_counter() - t0 < a.bench:
            step(i)
            i += 1
            if i % 20 == 0:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        print(f"steps_per_s {i / (time.perf_counter() - t0):.2f}")
        return

    params = [p for p in model.parameters()]
    step(0)  # optimizer state exists from here on: its pointers are fixed
    torch.cuda.synchronize()
    state = [opt.state[p]["exp_avg"] for p in params]
    uuid_line("start")
    for k, t in enumerate(params + state + [x]):
        print(f"ptr start t{k} {t.data_ptr():#x}")
    print("ready", flush=True)
    for i in range(1, a.steps):
        loss = step(i)
        print(f"step {i} loss {loss.item().hex()}", flush=True)
        time.sleep(a.step_ms / 1000)
    digest = sum(p.double().sum().item() for p in params)
    print(f"params {digest.hex()}")
    for k, t in enumerate(params + state + [x]):
        print(f"ptr end t{k} {t.data_ptr():#x}")
    uuid_line("end")


if __name__ == "__main__":
    main()
