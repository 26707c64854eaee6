#!/usr/bin/python3
"""Times one flow-matching step and one AYF-EMD step (autoguided teacher) of the same residual MLP in
PyTorch (Debian's python3-torch; install libopenblas-dev first, or it falls back to reference BLAS)
and in ayf (benchmarks/bench_steps, run in the same invocation), and prints ayf/PyTorch ratios and the
achieved GFLOP/s against a measured SGEMM peak.

    /usr/bin/python3 benchmarks/compare_pytorch.py --bench build-bench/benchmarks/bench_steps

The PyTorch EMD step follows the common peer recipe: torch.autograd.forward_ad for (F, dF/dt), then a
second forward with autograd for the loss (ayf reuses the JVP's primal activations instead).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.autograd.forward_ad as fwAD

SHAPES = [(2, 256, 1024), (784, 1024, 256)]  # (D, width, batch); "4 layers" = in, 2 blocks, out
# The weak teacher of autoguidance: as wide as the teacher, and a quarter as wide (toy2d's 64 of 256).
WEAK_FRACTIONS = [(1, "weak = width"), (4, "weak = width/4")]
FREQUENCIES = 8


class Embed(torch.nn.Module):
    def __init__(self, k=FREQUENCIES):
        super().__init__()
        self.register_buffer("omega", math.pi * torch.arange(1, k + 1, dtype=torch.float32))

    def forward(self, u):  # u: [B, 1]
        p = u * self.omega
        return torch.cat([torch.sin(p), torch.cos(p)], dim=1)


class MLP(torch.nn.Module):
    """z0 = [x, e(t), e(s), e(lambda)] W + b; z <- z + silu(z) W_l + b_l; F = silu(z) W_out + b_out."""

    def __init__(self, dims, width, student):
        super().__init__()
        self.student = student
        self.embed = Embed()
        inputs = dims + 2 * FREQUENCIES * (3 if student else 1)
        self.first = torch.nn.Linear(inputs, width)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(width, width) for _ in range(2)])
        self.out = torch.nn.Linear(width, dims)

    def forward(self, x, t, s=None, lam=None):
        parts = [x, self.embed(t)]
        if self.student:
            parts += [self.embed(s), self.embed(lam / 3)]
        z = self.first(torch.cat(parts, dim=1))
        for block in self.blocks:
            z = z + block(torch.nn.functional.silu(z))
        return self.out(torch.nn.functional.silu(z))


def flops_forward(dims, width, batch, student):
    inputs = dims + 2 * FREQUENCIES * (3 if student else 1)
    return 2 * batch * (inputs * width + 2 * width * width + width * dims)


def flops_backward(dims, width, batch, student):
    """Weight gradients of every layer plus input gradients of all but the first."""
    return flops_forward(dims, width, batch, student) + 2 * batch * (2 * width * width + width * dims)


def time_it(fn, seconds=2.0):
    fn()
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        fn()
        count += 1
    return (time.perf_counter() - start) / count


def torch_steps(dims, width, batch, weak_width):
    torch.manual_seed(0)
    teacher, weak, student = MLP(dims, width, False), MLP(dims, weak_width, False), MLP(dims, width, True)
    x0 = torch.randn(batch, dims)

    fm_opt = torch.optim.Adam(teacher.parameters(), lr=1e-4)

    def fm_step():
        eps = torch.randn_like(x0)
        t = torch.rand(batch, 1)
        xt = (1 - t) * x0 + t * eps
        loss = ((teacher(xt, t) - (eps - x0)) ** 2).sum(1).mean()
        fm_opt.zero_grad(set_to_none=True)
        loss.backward()
        fm_opt.step()

    emd_opt = torch.optim.Adam(student.parameters(), lr=1e-4)

    def emd_step():
        eps = torch.randn_like(x0)
        d = torch.sigmoid(torch.randn(batch, 1) - 0.8)
        s = torch.rand(batch, 1) * (1 - d)
        t = s + d
        lam = 1 + 2 * torch.rand(batch, 1)
        xt = (1 - t) * x0 + t * eps
        with torch.no_grad():
            v_strong, v_weak = teacher(xt, t), weak(xt, t)
            v = v_weak + lam * (v_strong - v_weak)
            with fwAD.dual_level():
                out = student(fwAD.make_dual(xt, v), fwAD.make_dual(t, torch.ones_like(t)), s, lam)
                f_minus, df_dt = fwAD.unpack_dual(out)
            g = (f_minus - v) + 0.99 * (t - s) * df_dt
            g = g / (g.norm(dim=1, keepdim=True) + 0.1)
            target = f_minus - g
        loss = ((student(xt, t, s, lam) - target) ** 2).sum(1).mean()
        emd_opt.zero_grad(set_to_none=True)
        loss.backward()
        emd_opt.step()

    return time_it(fm_step), time_it(emd_step)


def sgemm_peak():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = time_it(lambda: torch.mm(a, b), 1.0)
    return 2 * 1024**3 / seconds / 1e9


def ayf_steps(binary):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    # The MLP steps on the Eigen backend: "ayf_emd_step<ayf::eigen_backend<float> >/2/256/1024/64/real_time".
    out = subprocess.run([binary, "--benchmark_format=json", "--benchmark_min_time=2",
                          "--benchmark_filter=^(flow_matching_step|ayf_emd_step)<ayf::eigen_backend"],
                         check=True, capture_output=True, text=True, env=env).stdout
    times = {}
    for bench in json.loads(out)["benchmarks"]:
        name, *args = bench["name"].split("/")
        numbers = tuple(int(a) for a in args if a.isdigit())
        times[(name.split("<")[0], *numbers)] = bench["real_time"] / 1e3  # ms -> s
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="path of the bench_steps binary (-DAYF_BUILD_BENCHMARKS=ON)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both (default: all cores)")
    args = parser.parse_args()
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"compare_pytorch: '{args.bench}' is not an executable bench_steps binary")
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    blas = torch.__config__.show()
    print(f"torch {torch.__version__}, {args.threads} threads; BLAS: "
          f"{'OpenBLAS' if 'openblas' in blas.lower() else 'see torch.__config__.show()'}")
    peak = sgemm_peak()
    print(f"measured SGEMM peak (torch.mm 1024^3): {peak:.1f} GFLOP/s\n")
    ayf = ayf_steps(args.bench)
    print(f"{'shape (D, width, batch)':<26}{'step':<22}{'ayf ms':>9}{'torch ms':>10}{'torch/ayf':>11}"
          f"{'ayf GF/s':>10}{'% peak':>8}{'EMD/FM ayf':>12}{'EMD/FM torch':>14}{'EMD/FM GEMM':>13}")
    for dims, width, batch in SHAPES:
        a_fm = ayf[("flow_matching_step", dims, width, batch)]
        # Nominal FLOPs: FM = forward + backward; EMD = strong and weak teacher forwards, the student's
        # JVP (a forward on primal and tangent rows) and backward.
        fm_flops = flops_forward(dims, width, batch, False) + flops_backward(dims, width, batch, False)
        rows = []
        for fraction, label in WEAK_FRACTIONS:
            weak_width = width // fraction
            t_fm, t_emd = torch_steps(dims, width, batch, weak_width)
            a_emd = ayf[("ayf_emd_step", dims, width, batch, weak_width)]
            emd_flops = (flops_forward(dims, width, batch, False) + flops_forward(dims, weak_width, batch, False) +
                         2 * flops_forward(dims, width, batch, True) + flops_backward(dims, width, batch, True))
            if not rows:
                rows.append(("FM", a_fm, t_fm, fm_flops, None))
            rows.append((f"EMD ({label})", a_emd, t_emd, emd_flops, (t_fm, emd_flops / fm_flops)))
        for name, a, t, flops, emd in rows:
            gf = flops / a / 1e9
            print(f"{str((dims, width, batch)):<26}{name:<22}{a * 1e3:>9.2f}{t * 1e3:>10.2f}{t / a:>11.2f}"
                  f"{gf:>10.1f}{100 * gf / peak:>7.0f}%", end="")
            print(f"{a / a_fm:>12.2f}{t / emd[0]:>14.2f}{emd[1]:>13.2f}" if emd else "")


if __name__ == "__main__":
    main()
