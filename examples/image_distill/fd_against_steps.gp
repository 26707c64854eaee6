# FD against sampling steps from image_distill.csv (docs/image-distill.md): one line per method and
# guidance at one lambda, deterministic sampling (gamma 0; sCD's consistency multistep is gamma 1), log x.
# Usage: gnuplot -c fd_against_steps.gp image_distill.csv fd_against_steps.png [lambda (default 2)]
if (ARGC < 2) { print "usage: gnuplot -c fd_against_steps.gp <image_distill.csv> <out.png> [lambda]"; exit status 2 }
lambda = (ARGC >= 3) ? real(ARG3) : 2.0
set datafile separator ","
# Columns: 1 method, 2 guidance, 3 lambda, 4 steps, 5 gamma, 7 fd. Each series is copied into a data block
# (`with table if`, the header line skipped), so its points are joined in order of steps.
keep(m, g, gm) = (strcol(1) eq m) && (strcol(2) eq g) && (abs($3 - lambda) < 1e-9) && ($5 == gm)
set table $euler
plot ARG1 every ::1 using 4:7 with table if (keep("teacher_euler", "autoguidance", 0))
set table $heun
plot ARG1 every ::1 using 4:7 with table if (keep("teacher_heun", "autoguidance", 0))
set table $emd
plot ARG1 every ::1 using 4:7 with table if (keep("ayf_emd", "autoguidance", 0))
set table $emdgamma
plot ARG1 every ::1 using 4:7 with table if (keep("ayf_emd", "autoguidance", 0.5))
set table $lmd
plot ARG1 every ::1 using 4:7 with table if (keep("ayf_lmd", "autoguidance", 0))
set table $scd
plot ARG1 every ::1 using 4:7 with table if (keep("scd", "autoguidance", 1))
set table $emdcfg
plot ARG1 every ::1 using 4:7 with table if (keep("ayf_emd", "cfg", 0))
unset table
set datafile separator whitespace  # the data blocks

set terminal pngcairo size 820,520 font ",11"
set output ARG2
set logscale x 2
set xlabel "sampling steps"
set ylabel "fd (classifier features, lower is better)"
set key outside right
set grid
# Only the series the CSV has (a run with --methods ayf_emd has no LMD, sCD or CFG rows).
curves = ""
if (|$euler| > 0) { curves = curves . ', $euler using 1:2 with linespoints title "teacher Euler"' }
if (|$heun| > 0) { curves = curves . ', $heun using 1:2 with linespoints title "teacher Heun"' }
if (|$emd| > 0) { curves = curves . ', $emd using 1:2 with linespoints title "AYF-EMD, autoguidance"' }
if (|$emdgamma| > 0) { curves = curves . ', $emdgamma using 1:2 with linespoints title "AYF-EMD, gamma 0.5"' }
if (|$lmd| > 0) { curves = curves . ', $lmd using 1:2 with linespoints title "AYF-LMD, autoguidance"' }
if (|$scd| > 0) { curves = curves . ', $scd using 1:2 with linespoints title "sCD, autoguidance"' }
if (|$emdcfg| > 0) { curves = curves . ', $emdcfg using 1:2 with linespoints title "AYF-EMD, CFG"' }
if (strlen(curves) == 0) { print sprintf("fd_against_steps.gp: no rows at lambda %g in %s", lambda, ARG1); exit status 1 }
eval "plot " . curves[3:]
unset output
