"""Device backends of the capture: memory, streams, events, copies, kernels and timing.

- `TorchCudaBackend`: the real one (PyTorch on a CUDA GPU); `torch` is imported only here, inside
  its constructor, so the rest of the capture (and its tests) run without PyTorch.
- `NumpyCpuBackend`: numpy arrays on the CPU, `time.perf_counter` timing; "copies" are array copies
  and streams run one after another. It runs the whole driver with tiny shapes (`--backend numpy
  --tiny`), which is how the tests check the capture logic without a GPU.

Both offer the same methods; the capture (`capture.py`, `decoder.py`) calls nothing else.
Memory places: `gpu`, `pinned` (page-locked host), `pageable` (ordinary host).
"""
import contextlib
import os
import platform
import subprocess
import sys
import time

import numpy as np


class DeviceOutOfMemory(Exception):
    """A point did not fit in device memory; the capture skips it."""


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


class _CpuEvent:
    __slots__ = ("t",)

    def __init__(self):
        self.t = None


class NumpyCpuBackend:
    """numpy on the CPU: everything synchronous, events are `time.perf_counter()` stamps."""

    name = "numpy"

    def __init__(self, dtype: str = "fp16", seed: int = 0):
        types = {"fp16": np.float16, "fp32": np.float32}
        if dtype not in types:
            raise ValueError(f"the numpy backend computes in fp16 or fp32, not {dtype}")
        self.dtype_name, self.dtype = dtype, types[dtype]
        self.element_bytes = np.dtype(self.dtype).itemsize
        self.rng = np.random.default_rng(seed)

    def info(self):
        return {"device": f"CPU ({platform.machine() or 'unknown'}, numpy backend)", "driver": "unknown", "cuda": "unknown",
                "libraries": {"numpy": np.__version__, "python": platform.python_version()}}

    # memory
    def empty(self, shape, where="gpu", dtype=None):
        return np.zeros(shape, dtype=np.uint8 if dtype == "uint8" else self.dtype)

    def fill_random(self, t, scale=1.0):
        if t.dtype == np.uint8:
            t[...] = self.rng.integers(0, 256, size=t.shape, dtype=np.uint8)
        else:
            t[...] = (self.rng.standard_normal(t.shape, dtype=np.float32) * scale).astype(self.dtype)

    def randn(self, shape):
        t = self.empty(shape)
        self.fill_random(t)
        return t

    def free_gpu_bytes(self):
        return 1 << 60

    def release(self):
        pass

    # layout
    def view(self, flat, offset, shape):
        return flat[offset:offset + _prod(shape)].reshape(shape)

    def reshape(self, t, shape):
        return t.reshape(shape)

    def permute(self, t, dims):
        return t.transpose(dims)

    def cat(self, parts):
        return np.concatenate(parts)

    # streams and events
    def compute_stream(self):
        return "compute"

    def stream(self):
        return "side"

    def stream_context(self, stream):
        return contextlib.nullcontext()

    def event(self, timing=True):
        return _CpuEvent()

    def record(self, ev, stream):
        ev.t = time.perf_counter()

    def wait(self, stream, ev):
        pass

    def elapsed(self, a, b):
        return b.t - a.t

    def synchronize(self):
        pass

    def copy(self, dst, src, stream):
        np.copyto(dst, src)

    # kernels
    def matmul(self, a, b):
        return np.matmul(a, b)

    def linear(self, x, w, bias=None, out=None):
        r = np.matmul(x, w, out=out)
        if bias is not None:
            r += bias
        return r

    def linear_acc(self, out, x, w):
        out += np.matmul(x, w)

    def add(self, a, b):
        return a + b

    def layer_norm(self, x, w, b, eps=1e-5):
        x32 = x.astype(np.float32)
        mu = x32.mean(-1, keepdims=True)
        var = x32.var(-1, keepdims=True)
        return ((x32 - mu) / np.sqrt(var + eps) * w + b).astype(self.dtype)

    def rms_norm(self, x, w, eps=1e-6):
        x32 = x.astype(np.float32)
        return (x32 / np.sqrt((x32 * x32).mean(-1, keepdims=True) + eps) * w).astype(self.dtype)

    def relu_(self, x):
        return np.maximum(x, 0, out=x)

    def silu_mul(self, up, ffn):
        g = up[:, :ffn].astype(np.float32)
        return (g / (1 + np.exp(-g)) * up[:, ffn:]).astype(self.dtype)

    def attention(self, q, k, v, causal):
        """q [B, H, Lq, D], k and v [B, KVH, T, D] (KVH divides H); a causal mask aligned to the top left."""
        g = q.shape[1] // k.shape[1]
        k32 = np.repeat(k.astype(np.float32), g, axis=1)
        v32 = np.repeat(v.astype(np.float32), g, axis=1)
        s = np.matmul(q.astype(np.float32), np.swapaxes(k32, -1, -2)) / np.sqrt(q.shape[-1])
        if causal:
            lq, t = s.shape[-2], s.shape[-1]
            s = np.where(np.tril(np.ones((lq, t), dtype=bool)), s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        return np.matmul(s, v32).astype(self.dtype)

    # timing
    def time_op(self, fn, repeats, warmup, stream=None, flush=False, preroll=False):
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return out


class TorchCudaBackend:
    """PyTorch on one CUDA GPU. Kernels are timed with CUDA events; `time_op` queues the timed runs
    behind a short GPU sleep so that launch latency is not measured, and can flush the L2 cache
    (a 256 MiB write) before each run so that weights and caches come from device memory, as they
    do when every layer has its own."""

    name = "torch"

    def __init__(self, dtype: str = "fp16", seed: int = 0):
        import torch  # noqa: only here, so that the rest runs without PyTorch
        import torch.nn.functional as F
        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch sees no CUDA device (torch.cuda.is_available() is False)")
        self.torch, self.F = torch, F
        types = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
        self.dtype_name, self.dtype = dtype, types[dtype]
        self.element_bytes = torch.empty((), dtype=self.dtype).element_size()
        torch.manual_seed(seed)
        self.device = torch.device("cuda", torch.cuda.current_device())
        self._compute = torch.cuda.Stream(self.device)
        self._flush = None
        self._oom = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
        self._gqa = self._probe_enable_gqa()

    def _probe_enable_gqa(self):
        t = self.torch.zeros((1, 2, 1, 8), device=self.device, dtype=self.dtype)
        try:
            self.F.scaled_dot_product_attention(t, t[:, :1], t[:, :1], enable_gqa=True)
            return True
        except (TypeError, RuntimeError):
            return False

    def info(self):
        torch = self.torch
        driver = None
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i", str(self.device.index)],
                               capture_output=True, text=True, timeout=20)
            if r.returncode == 0 and r.stdout.strip():
                driver = r.stdout.strip().splitlines()[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
        if driver is None:
            try:
                v = torch._C._cuda_getDriverVersion()
                driver = f"unknown (nvidia-smi unavailable; CUDA driver API {v // 1000}.{v % 1000 // 10})"
            except Exception:
                driver = "unknown"
        libraries = {"torch": torch.__version__, "python": platform.python_version(), "numpy": np.__version__,
                     "cublas": self._cublas_version()}
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if cudnn:
            libraries["cudnn"] = str(cudnn)
        return {"device": torch.cuda.get_device_name(self.device), "driver": driver,
                "cuda": torch.version.cuda or "unknown", "libraries": libraries}

    def _cublas_version(self):
        """cuBLAS's own version (cublasGetProperty on the libcublas this process loaded); else the
        CUDA version PyTorch was built with, marked as such."""
        torch = self.torch
        try:
            a = torch.ones((8, 8), device=self.device, dtype=self.dtype)
            (a @ a).sum().item()
            path = None
            with open("/proc/self/maps") as f:
                for line in f:
                    name = line.strip().split()[-1] if line.strip() else ""
                    if os.path.basename(name).startswith("libcublas.so"):
                        path = name
                        break
            if path:
                import ctypes
                lib = ctypes.CDLL(path)
                parts = []
                for prop in (0, 1, 2):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
                    v = ctypes.c_int()
                    if lib.cublasGetProperty(prop, ctypes.byref(v)) != 0:
                        raise OSError("cublasGetProperty failed")
                    parts.append(str(v.value))
                return ".".join(parts)
        except Exception:
            pass
        return f"{torch.version.cuda} (torch.version.cuda; cuBLAS's own version not found)"

    # memory
    def empty(self, shape, where="gpu", dtype=None):
        torch = self.torch
        dt = torch.uint8 if dtype == "uint8" else self.dtype
        try:
            if where == "gpu":
                return torch.empty(shape, dtype=dt, device=self.device)
            if where == "pinned":
                return torch.empty(shape, dtype=dt, pin_memory=True)
            t = torch.empty(shape, dtype=dt)
            t.zero_()  # touch the pages, as a running engine's buffers are
            return t
        except self._oom as e:
            raise DeviceOutOfMemory(str(e)) from e
        except RuntimeError as e:  # page-locked host memory refused
            if "out of memory" in str(e).lower():
                raise DeviceOutOfMemory(f"{where} memory: {e}") from e
            raise

    def fill_random(self, t, scale=1.0):
        torch = self.torch
        if t.is_cuda:
            if t.dtype == torch.uint8:
                t.random_(0, 256)
            else:
                t.normal_(0, scale)
            return
        flat = t.view(-1)
        chunk = min(flat.numel(), 1 << 26)
        src = torch.empty(chunk, dtype=t.dtype, device=self.device)
        self.fill_random(src, scale)
        for i in range(0, flat.numel(), chunk):
            n = min(chunk, flat.numel() - i)
            flat[i:i + n].copy_(src[:n])
        torch.cuda.synchronize(self.device)

    def randn(self, shape):
        t = self.empty(shape, "gpu")
        t.normal_()
        return t

    def free_gpu_bytes(self):
        free, _ = self.torch.cuda.mem_get_info(self.device)
        return free + self.torch.cuda.memory_reserved(self.device) - self.torch.cuda.memory_allocated(self.device)

    def release(self):
        self.torch.cuda.synchronize(self.device)
        self.torch.cuda.empty_cache()
        host_empty = getattr(self.torch._C, "_host_emptyCache", None)
        if host_empty is not None:
            host_empty()

    # layout
    def view(self, flat, offset, shape):
        return flat[offset:offset + _prod(shape)].view(shape)

    def reshape(self, t, shape):
        return t.reshape(shape)

    def permute(self, t, dims):
        return t.permute(dims)

    def cat(self, parts):
        return self.torch.cat(parts)

    # streams and events
    def compute_stream(self):
        return self._compute

    def stream(self):
        return self.torch.cuda.Stream(self.device)

    def stream_context(self, stream):
        return self.torch.cuda.stream(stream)

    def event(self, timing=True):
        return self.torch.cuda.Event(enable_timing=timing)

    def record(self, ev, stream):
        ev.record(stream)

    def wait(self, stream, ev):
        if ev is not None:
            stream.wait_event(ev)

    def elapsed(self, a, b):
        return a.elapsed_time(b) / 1e3

    def synchronize(self):
        self.torch.cuda.synchronize(self.device)

    def copy(self, dst, src, stream):
        """Queues `dst <- src` on `stream`; a device tensor read there is kept alive until it is done."""
        with self.torch.cuda.stream(stream):
            dst.copy_(src, non_blocking=True)
        if src.is_cuda and stream is not self._compute:
            src.record_stream(stream)

    # kernels
    def matmul(self, a, b):
        return self.torch.matmul(a, b)

    def linear(self, x, w, bias=None, out=None):
        torch = self.torch
        if bias is None:
            return torch.matmul(x, w) if out is None else torch.matmul(x, w, out=out)
        return torch.addmm(bias, x, w) if out is None else torch.addmm(bias, x, w, out=out)

    def linear_acc(self, out, x, w):
        out.addmm_(x, w)

    def add(self, a, b):
        return a + b

    def layer_norm(self, x, w, b, eps=1e-5):
        return self.F.layer_norm(x, (x.shape[-1],), w, b, eps)

    def rms_norm(self, x, w, eps=1e-6):
        if hasattr(self.F, "rms_norm"):
            return self.F.rms_norm(x, (x.shape[-1],), w, eps)
        x32 = x.float()
        return (x32 * self.torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w

    def relu_(self, x):
        return self.torch.relu_(x)

    def silu_mul(self, up, ffn):
        return self.F.silu(up[:, :ffn]) * up[:, ffn:]

    def attention(self, q, k, v, causal):
        """scaled_dot_product_attention; grouped-query K/V through `enable_gqa` where this PyTorch
        has it, else one query folded per group (decode) or K/V heads expanded (prefill)."""
        F = self.F
        g = q.shape[1] // k.shape[1]
        if g == 1:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        if self._gqa:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        b, h, lq, d = q.shape
        if lq == 1 and not causal:
            qf = q.reshape(b, k.shape[1], g, d)
            return F.scaled_dot_product_attention(qf, k, v).reshape(b, h, 1, d)
        return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), is_causal=causal)

    # timing
    def time_op(self, fn, repeats, warmup, stream=None, flush=False, preroll=True):
        torch = self.torch
        s = stream or self._compute
        torch.cuda.synchronize(self.device)  # inputs made on other streams are ready
        try:
            if flush and self._flush is None:
                self._flush = torch.empty(256 << 20, dtype=torch.uint8, device=self.device)
            with torch.cuda.stream(s):
                for _ in range(warmup):
                    fn()
                starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
                ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
                if preroll and hasattr(torch.cuda, "_sleep"):
                    torch.cuda._sleep(2_000_000)  # about a millisecond: the runs below queue up behind it
                for i in range(repeats):
                    if flush:
                        self._flush.zero_()
                    starts[i].record(s)
                    fn()
                    ends[i].record(s)
            torch.cuda.synchronize(self.device)
        except self._oom as e:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            raise DeviceOutOfMemory(str(e)) from e
        return [a.elapsed_time(b) / 1e3 for a, b in zip(starts, ends)]


def make_backend(name: str, dtype: str):
    if name == "numpy":
        return NumpyCpuBackend(dtype)
    if name == "torch":
        return TorchCudaBackend(dtype)
    raise ValueError(f"unknown backend {name!r}; use torch or numpy")


def warn(msg: str):
    print(msg, file=sys.stderr, flush=True)
