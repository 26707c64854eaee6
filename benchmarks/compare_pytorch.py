#!/usr/bin/python3
"""Times one flow-matching step and one AYF-EMD step (autoguided teacher) of the same residual MLP and
of the same U-Net (28x28x1, base 32, levels (1, 2), one block per level, GroupNorm 8, batch 128) in
PyTorch (Debian's python3-torch; install libopenblas-dev first, or it falls back to reference BLAS)
and in ayf (benchmarks/bench_steps, run in the same invocation), and prints ayf/PyTorch ratios, the
achieved GFLOP/s against a measured SGEMM peak (the better of torch.mm and ayf's gemm, benchmarks/bench_gemm,
sampled before the rounds and after each, the best sample kept),
the machine's vector extensions and its load.

    /usr/bin/python3 benchmarks/compare_pytorch.py --bench build-bench/benchmarks/bench_steps [--models unet] [--rounds 3]

Each round times ayf's steps, then PyTorch's; the table gives the median of the rounds for every time
(so a slow spell of a shared machine moves one round, not the comparison), and the U-Net lines every
round's ratio.

The PyTorch EMD step follows the common peer recipe: torch.autograd.forward_ad for (F, dF/dt), then a
second forward with autograd for the loss (ayf reuses the JVP's primal activations instead).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

# GNU OpenMP (PyTorch's CPU threads) spin-waits between parallel regions by default; on cores shared
# with other work that spinning took PyTorch's MLP steps 12x longer (measured, docs/performance.md).
# Passive waiting is the fair setting for a shared machine; set OMP_WAIT_POLICY to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402 (after OMP_WAIT_POLICY, which libgomp reads when it loads)
import torch.autograd.forward_ad as fwAD  # noqa: E402

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


class UNetEmbedding(torch.nn.Module):
    """e = silu(silu(z) W_2 + b_2), z = e(t) W_t + b [+ e(s) W_s + e(lambda / 3) W_lambda] (nn/unet.hpp)."""

    def __init__(self, width, student):
        super().__init__()
        self.student = student
        self.embed = Embed()
        self.t = torch.nn.Linear(2 * FREQUENCIES, width)
        if student:
            self.s = torch.nn.Linear(2 * FREQUENCIES, width, bias=False)
            self.lam = torch.nn.Linear(2 * FREQUENCIES, width, bias=False)
        self.second = torch.nn.Linear(width, width)

    def forward(self, t, s=None, lam=None):
        z = self.t(self.embed(t))
        if self.student:
            z = z + self.s(self.embed(s)) + self.lam(self.embed(lam / 3))
        return torch.nn.functional.silu(self.second(torch.nn.functional.silu(z)))


class ResidualBlock(torch.nn.Module):
    """out = skip(x) + conv2(silu(GN2(conv1(silu(GN1(x))) + e W_e))), skip a 1x1 conv when C changes."""

    def __init__(self, c_in, c_out, embedding, groups):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(groups, c_in, eps=1e-5)
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
        self.embed = torch.nn.Linear(embedding, c_out, bias=False)
        self.norm2 = torch.nn.GroupNorm(groups, c_out, eps=1e-5)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = torch.nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x, e):
        silu = torch.nn.functional.silu
        h = self.conv1(silu(self.norm1(x))) + self.embed(e)[:, :, None, None]
        h = self.conv2(silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class UNet(torch.nn.Module):
    """bench_steps' U-Net (nn/unet.hpp with unet_shape): conv_in; per level a block (+ 2x2 average pool
    but after the last); a mid block; per level, last first, two [concat a skip; block] (+ nearest 2x
    upsampling but after level 0); GroupNorm -> SiLU -> conv 3x3."""

    def __init__(self, student, size=28, channels=1, base=32, multipliers=(1, 2), groups=8):
        super().__init__()
        self.size, self.channels = size, channels
        e = 4 * base
        self.embedding = UNetEmbedding(e, student)
        self.conv_in = torch.nn.Conv2d(channels, base * multipliers[0], 3, padding=1)
        skips, current = [base * multipliers[0]], base * multipliers[0]
        self.down = torch.nn.ModuleList()
        for level, m in enumerate(multipliers):
            self.down.append(ResidualBlock(current, base * m, e, groups))
            current = base * m
            skips.append(current)
            if level + 1 < len(multipliers):
                skips.append(current)  # the pooled image
        self.mid = ResidualBlock(current, current, e, groups)
        self.up = torch.nn.ModuleList()
        for level in reversed(range(len(multipliers))):
            for _ in range(2):
                self.up.append(ResidualBlock(current + skips.pop(), base * multipliers[level], e, groups))
                current = base * multipliers[level]
        self.levels = len(multipliers)
        self.out_norm = torch.nn.GroupNorm(groups, current, eps=1e-5)
        self.out_conv = torch.nn.Conv2d(current, channels, 3, padding=1)

    def forward(self, x, t, s=None, lam=None):
        e = self.embedding(t, s, lam)
        h = self.conv_in(x.view(-1, self.channels, self.size, self.size))
        skips = [h]
        for level, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if level + 1 < self.levels:
                h = torch.nn.functional.avg_pool2d(h, 2)
                skips.append(h)
        h = self.mid(h, e)
        blocks = iter(self.up)
        for level in reversed(range(self.levels)):
            for _ in range(2):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), e)
            if level > 0:
                h = torch.nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        h = self.out_conv(torch.nn.functional.silu(self.out_norm(h)))
        return h.reshape(x.shape[0], -1)


UNET_BATCH = 128
UNET_PARAMETERS = {False: 503_329, True: 507_425}  # bench_steps' "parameters" counters (teacher, student)


def unet_flops(batch):
    """2 x multiply-adds of one forward of the convolutions and linear layers, and of the first
    layers (conv_in and the embedding's input projections, whose input gradients are not needed)."""
    model, total, first = UNet(False), [0], [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs = output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        else:
            macs = output.numel() * module.in_features
        total[0] += 2 * macs
        if module is model.conv_in or module is model.embedding.t:
            first[0] += 2 * macs

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(batch, 28 * 28), torch.zeros(batch, 1))
    return total[0], first[0]


def flops_forward(dims, width, batch, student):
    inputs = dims + 2 * FREQUENCIES * (3 if student else 1)
    return 2 * batch * (inputs * width + 2 * width * width + width * dims)


def flops_backward(dims, width, batch, student):
    """Weight gradients of every layer plus input gradients of all but the first."""
    return flops_forward(dims, width, batch, student) + 2 * batch * (2 * width * width + width * dims)


CPU_SECONDS = {}  # fn -> process CPU seconds (all threads) per call, from the last time_it


def time_it(fn, seconds=2.0):
    """Wall seconds per call; the process CPU seconds per call go to CPU_SECONDS[fn]."""
    fn()
    fn()
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or count < 3:
        fn()
        count += 1
    CPU_SECONDS[fn] = (time.process_time() - cpu) / count
    return (time.perf_counter() - start) / count


def torch_steps(dims, width, batch, weak_width):
    """(FM seconds, EMD seconds, FM CPU seconds, EMD CPU seconds) per step of the MLP in PyTorch."""
    torch.manual_seed(0)
    teacher, weak, student = MLP(dims, width, False), MLP(dims, weak_width, False), MLP(dims, width, True)
    return recipe_steps(teacher, weak, student, torch.randn(batch, dims)) + recipe_steps.cpu


def torch_unet_steps():
    """The same four numbers for the U-Net (parameter counts checked against ayf's)."""
    torch.manual_seed(0)
    teacher, weak, student = UNet(False), UNet(False), UNet(True)
    for model, is_student in ((teacher, False), (student, True)):
        count = sum(p.numel() for p in model.parameters())
        if count != UNET_PARAMETERS[is_student]:
            sys.exit(f"compare_pytorch: the PyTorch U-Net {'student' if is_student else 'teacher'} has {count} "
                     f"parameters, ayf's {UNET_PARAMETERS[is_student]}: the architectures differ")
    return recipe_steps(teacher, weak, student, torch.randn(UNET_BATCH, 28 * 28), seconds=6.0) + recipe_steps.cpu


def measure_round(binary, models):
    """One round: ayf's steps (bench_steps), then PyTorch's. Returns (ayf times, torch times)."""
    ayf = ayf_steps(binary, models)
    ours = {}
    if "mlp" in models:
        for dims, width, batch in SHAPES:
            for fraction, _ in WEAK_FRACTIONS:
                ours[(dims, width, batch, width // fraction)] = torch_steps(dims, width, batch, width // fraction)
    if "unet" in models:
        ours["unet"] = torch_unet_steps()
    return ayf, ours


def median_of(rounds):
    """The median over rounds of every number (tuples element by element); other values from round 1."""
    out = {}
    for key, first in rounds[0].items():
        values = [r[key] for r in rounds]
        if isinstance(first, tuple):
            out[key] = tuple(statistics.median(v[i] for v in values) for i in range(len(first)))
        elif isinstance(first, (int, float)):
            out[key] = statistics.median(values)
        else:
            out[key] = first
    return out


def recipe_steps(teacher, weak, student, x0, seconds=2.0):
    """Times (flow-matching step of the teacher, AYF-EMD step of the student) in the peers' recipe."""
    batch = x0.shape[0]

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

    fm, emd = time_it(fm_step, seconds), time_it(emd_step, seconds)
    recipe_steps.cpu = (CPU_SECONDS[fm_step], CPU_SECONDS[emd_step])
    return fm, emd


def sgemm_peak():
    """The best of torch.mm at 1024^3 and 2048^3 (OpenBLAS, all threads), GFLOP/s."""
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        best = max(best, 2 * n**3 / time_it(lambda: torch.mm(a, b), 1.0) / 1e9)
    return best


def ayf_sgemm_peak(binary):
    """ayf's default gemm at 2048^3 (bench_gemm, oneTBB blocks on all threads), GFLOP/s; None without it."""
    if binary is None:
        return None
    out = subprocess.run([binary, "--benchmark_format=json", "--benchmark_min_time=1",
                          "--benchmark_filter=^sgemm/m:2048/n:2048/k:2048/ta:0/tb:0/provider:3/"],
                         check=True, capture_output=True, text=True).stdout
    rates = [b["FLOPS"] for b in json.loads(out)["benchmarks"] if "FLOPS" in b]
    return max(rates) / 1e9 if rates else None


def cpu_line():
    """The CPU model, its vector extensions (from /proc/cpuinfo) and the load average."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores; vector extensions: {' '.join(vector) or 'none found'}; load average {load}"


def ayf_steps(binary, models):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    # The steps on the Eigen backend: "ayf_emd_step<ayf::eigen_backend<float> >/2/256/1024/64/real_time".
    names = {"mlp": ["flow_matching_step", "ayf_emd_step"], "unet": ["unet_flow_matching_step", "unet_ayf_emd_step"]}
    chosen = "|".join(n for m in models for n in names[m])
    out = subprocess.run([binary, "--benchmark_format=json", "--benchmark_min_time=2",
                          f"--benchmark_filter=^({chosen})<ayf::eigen_backend"],
                         check=True, capture_output=True, text=True, env=env).stdout
    times = {}
    report = json.loads(out)
    times["gemm"] = report.get("context", {}).get("ayf_gemm", "not reported")
    for bench in report["benchmarks"]:
        name, *args = bench["name"].split("/")
        numbers = tuple(int(a) for a in args if a.isdigit())
        times[(name.split("<")[0], *numbers)] = bench["real_time"] / 1e3  # ms -> s
        times[("cpu", name.split("<")[0], *numbers)] = bench["cpu_time"] / 1e3  # process CPU, all threads
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="path of the bench_steps binary (-DAYF_BUILD_BENCHMARKS=ON)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both (default: all cores)")
    parser.add_argument("--models", nargs="+", choices=["mlp", "unet"], default=["mlp", "unet"],
                        help="which steps to compare (default: both)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of ayf-then-PyTorch timings; the table gives their medians (default: 3)")
    parser.add_argument("--bench-gemm", help="path of the bench_gemm binary, for ayf's SGEMM peak (default: "
                        "bench_gemm beside --bench, if there)")
    args = parser.parse_args()
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"compare_pytorch: '{args.bench}' is not an executable bench_steps binary")
    if args.bench_gemm is None:
        beside = os.path.join(os.path.dirname(args.bench), "bench_gemm")
        args.bench_gemm = beside if os.access(beside, os.X_OK) else None
    elif not os.access(args.bench_gemm, os.X_OK):
        sys.exit(f"compare_pytorch: '{args.bench_gemm}' is not an executable bench_gemm binary")
    if not 1 <= args.rounds <= 100:
        sys.exit(f"compare_pytorch: --rounds must be in [1, 100], got {args.rounds}")
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    blas = torch.__config__.show()
    print(f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; BLAS: "
          f"{'OpenBLAS' if 'openblas' in blas.lower() else 'BLAS_INFO=generic (libblas.so.3, the system alternative)' if 'BLAS_INFO=generic' in blas else 'see torch.__config__.show()'}")
    print(cpu_line())
    print(f"CPU capability used by torch: {torch.backends.cpu.get_cpu_capability()}"
          if hasattr(torch.backends, "cpu") and hasattr(torch.backends.cpu, "get_cpu_capability") else
          next((line.strip() for line in blas.splitlines() if "CPU capability" in line), ""))
    # The peak is the machine's best SGEMM that either program reaches: the percentages below are of it.
    # Sampled before the first round and after every round, the best sample kept: on a shared machine one
    # sample can land in a slow moment and inflate every percentage.
    peaks = [(sgemm_peak(), ayf_sgemm_peak(args.bench_gemm))]
    ayf_rounds, torch_rounds = [], []
    for r in range(args.rounds):
        a, t = measure_round(args.bench, args.models)
        ayf_rounds.append(a)
        torch_rounds.append(t)
        peaks.append((sgemm_peak(), ayf_sgemm_peak(args.bench_gemm)))
        print(f"round {r + 1} of {args.rounds} measured", file=sys.stderr, flush=True)
    torch_peak = max(p[0] for p in peaks)
    ayf_samples = [p[1] for p in peaks if p[1]]
    ayf_peak = max(ayf_samples) if ayf_samples else None
    peak = max(torch_peak, ayf_peak or 0.0)
    print(f"measured SGEMM peak: {peak:.1f} GFLOP/s, the better of torch.mm (best of 1024^3 and 2048^3) "
          f"{torch_peak:.1f} and ayf's gemm at 2048^3 "
          f"{f'{ayf_peak:.1f}' if ayf_peak else '(not measured: no bench_gemm)'}; best of {len(peaks)} samples "
          f"(before the rounds and after each; ayf's: {', '.join(f'{x:.0f}' for x in ayf_samples) or 'none'})")
    ayf, ours = median_of(ayf_rounds), median_of(torch_rounds)
    print(f"ayf gemm: {ayf['gemm']}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')} "
          "(torch's OpenBLAS reads it too)")
    print(f"times: medians of {args.rounds} round(s), each ayf's steps then PyTorch's\n")
    if "mlp" in args.models:
        compare_mlp(ayf, ours, peak)
    if "unet" in args.models:
        compare_unet(ayf, ours, peak, ayf_rounds, torch_rounds)
    print(f"\nafter the run: {cpu_line()}")


def compare_unet(ayf, ours, peak, ayf_rounds, torch_rounds):
    t_fm, t_emd, c_fm, c_emd = ours["unet"]
    a_fm = ayf[("unet_flow_matching_step", UNET_BATCH)]
    a_emd = ayf[("unet_ayf_emd_step", UNET_BATCH)]
    forward, first = unet_flops(UNET_BATCH)
    backward = 2 * forward - first  # weight gradients of every layer, input gradients but of the first
    fm_flops = forward + backward
    emd_flops = 2 * forward + 2 * forward + backward  # teacher and weak teacher; the JVP (2x rows); backward
    print(f"\nU-Net 28x28x1, base 32, levels (1, 2), batch {UNET_BATCH}: parameters teacher "
          f"{UNET_PARAMETERS[False]:,} / student {UNET_PARAMETERS[True]:,} (both checked); nominal GFLOP per step "
          f"FM {fm_flops / 1e9:.1f}, EMD {emd_flops / 1e9:.1f} (EMD/FM {emd_flops / fm_flops:.2f})")
    print(f"{'step':<10}{'ayf ms':>10}{'torch ms':>10}{'torch/ayf':>11}{'ayf GF/s':>10}{'% peak':>8}"
          f"{'torch GF/s':>12}{'% peak':>8}")
    for name, a, t, flops in (("FM", a_fm, t_fm, fm_flops), ("AYF-EMD", a_emd, t_emd, emd_flops)):
        ga, gt = flops / a / 1e9, flops / t / 1e9
        print(f"{name:<10}{a * 1e3:>10.1f}{t * 1e3:>10.1f}{t / a:>11.2f}{ga:>10.1f}{100 * ga / peak:>7.0f}%"
              f"{gt:>12.1f}{100 * gt / peak:>7.0f}%")
    print(f"EMD/FM: ayf {a_emd / a_fm:.2f}, torch {t_emd / t_fm:.2f}")
    if len(ayf_rounds) > 1:
        ratios = [(t["unet"][0] / a[("unet_flow_matching_step", UNET_BATCH)],
                   t["unet"][1] / a[("unet_ayf_emd_step", UNET_BATCH)]) for a, t in zip(ayf_rounds, torch_rounds)]
        print("torch/ayf per round: FM " + " ".join(f"{r[0]:.2f}" for r in ratios) +
              "; AYF-EMD " + " ".join(f"{r[1]:.2f}" for r in ratios))
    # On a machine shared with other work, wall time measures the share of the cores each got; the
    # process CPU time (all threads) measures the work of a step.
    a_cfm, a_cemd = ayf[("cpu", "unet_flow_matching_step", UNET_BATCH)], ayf[("cpu", "unet_ayf_emd_step", UNET_BATCH)]
    print(f"process CPU seconds per step (all threads): FM ayf {a_cfm:.2f} / torch {c_fm:.2f} "
          f"(torch/ayf {c_fm / a_cfm:.2f}); AYF-EMD ayf {a_cemd:.2f} / torch {c_emd:.2f} (torch/ayf {c_emd / a_cemd:.2f}); "
          f"EMD/FM ayf {a_cemd / a_cfm:.2f}, torch {c_emd / c_fm:.2f}")


def compare_mlp(ayf, ours, peak):
    print(f"{'shape (D, width, batch)':<26}{'step':<22}{'ayf ms':>9}{'torch ms':>10}{'torch/ayf':>11}"
          f"{'ayf GF/s':>10}{'% peak':>8}{'EMD/FM ayf':>12}{'EMD/FM torch':>14}{'EMD/FM GEMM':>13}{'CPU t/a':>10}")
    print("(CPU t/a: torch/ayf in process CPU seconds per step, all threads)")
    for dims, width, batch in SHAPES:
        a_fm = ayf[("flow_matching_step", dims, width, batch)]
        # Nominal FLOPs: FM = forward + backward; EMD = strong and weak teacher forwards, the student's
        # JVP (a forward on primal and tangent rows) and backward.
        fm_flops = flops_forward(dims, width, batch, False) + flops_backward(dims, width, batch, False)
        rows = []
        for fraction, label in WEAK_FRACTIONS:
            weak_width = width // fraction
            t_fm, t_emd, c_fm, c_emd = ours[(dims, width, batch, weak_width)]
            a_emd = ayf[("ayf_emd_step", dims, width, batch, weak_width)]
            cpu_ratio = c_emd / ayf[("cpu", "ayf_emd_step", dims, width, batch, weak_width)]
            emd_flops = (flops_forward(dims, width, batch, False) + flops_forward(dims, weak_width, batch, False) +
                         2 * flops_forward(dims, width, batch, True) + flops_backward(dims, width, batch, True))
            if not rows:
                rows.append(("FM", a_fm, t_fm, fm_flops, None, c_fm / ayf[("cpu", "flow_matching_step", dims, width, batch)]))
            rows.append((f"EMD ({label})", a_emd, t_emd, emd_flops, (t_fm, emd_flops / fm_flops), cpu_ratio))
        for name, a, t, flops, emd, cpu in rows:
            gf = flops / a / 1e9
            print(f"{str((dims, width, batch)):<26}{name:<22}{a * 1e3:>9.2f}{t * 1e3:>10.2f}{t / a:>11.2f}"
                  f"{gf:>10.1f}{100 * gf / peak:>7.0f}%", end="")
            print(f"{a / a_fm:>12.2f}{t / emd[0]:>14.2f}{emd[1]:>13.2f}" if emd else f"{'':>39}", end="")
            print(f"{cpu:>10.2f}")


if __name__ == "__main__":
    main()
