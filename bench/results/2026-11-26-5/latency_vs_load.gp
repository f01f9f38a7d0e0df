set terminal pngcairo size 900,560 font "sans,10"
set output 'latency_vs_load.png'
set title "fanin 4 -> 1, QoS 1, window 32: p99 latency against offered load (median of 3 run(s))"
set datafile missing '?'
set logscale xy
set xlabel 'offered load, msgs/s (4 publishers x rate)'
set ylabel 'p99 latency, ms (log scale)'
set label 1 'labels: a publisher waits when 32 messages are unacknowledged, so past saturation it sends less than offered' at graph 0.02, graph 0.03 font ',8'
set format x '%.0s%c'
set grid xtics ytics mxtics mytics
set key top left
plot 'latency_vs_load.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'mosquitto', \
     'latency_vs_load.dat' using 1:3 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'starling', \
     'latency_saturated.dat' index 0 using 1:2:3 with labels offset char 0,1.2 textcolor rgb '#1f77b4' notitle, \
     'latency_saturated.dat' index 1 using 1:2:3 with labels offset char 0,-1.2 textcolor rgb '#d62728' notitle, \
     'latency_open_loop.dat' index 0 using 1:2 with points pt 9 ps 2 lc rgb '#1f77b4' title 'mosquitto, open loop (x = achieved send rate)', \
     'latency_open_loop.dat' index 1 using 1:2 with points pt 9 ps 2 lc rgb '#d62728' title 'starling, open loop (x = achieved send rate)'
