# Plots docs/curve.tsv (from 'consumer bench --modes floor,floor+records,contactrelay --n 4000
# --concurrency 16,...,1024 --latency 50ms --json'): gnuplot docs/curve.gp, from the repository root.
set terminal pngcairo size 900,560 font "DejaVu Sans,11"
set output "docs/curve.png"
set title "Throughput against CONCURRENCY (provider latency 50 ms, 2 cores, all on one machine)"
set xlabel "CONCURRENCY"
set ylabel "commands per second"
set logscale xy 2
set xtics (16, 32, 64, 128, 256, 512, 1024)
set key top left
set grid
plot "docs/curve.tsv" using 1:4 with lines dashtype 2 lw 2 lc rgb "#888888" title "bound: CONCURRENCY / latency", \
     "" using 1:2 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "floor (bare nats.go loop)", \
     "" using 1:5 with linespoints pt 9 lw 2 lc rgb "#2ca02c" title "floor+records (the floor with the two record writes)", \
     "" using 1:3 with linespoints pt 5 lw 2 lc rgb "#d62728" title "contactrelay"
