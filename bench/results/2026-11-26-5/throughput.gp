set terminal pngcairo size 1000,560 font "sans,10"
set output 'throughput.png'
set title "Delivered per second during the measured window, median of 3 run(s) of 5 s; 64-byte payloads, MQTT 5 (fanout: deliveries)"
set style data histograms
set style histogram clustered gap 1
set xrange [-0.6:4.6]
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing '?'
set ylabel 'messages/s delivered, log scale'
set grid ytics
set key top right
set xtics nomirror
set ytics nomirror
set logscale y
set yrange [2756:3025086]
set format y '%.0s%c'
plot 'throughput.dat' using 2:xtic(1) title 'mosquitto' lc rgb '#1f77b4', \
     '' using 3 title 'starling' lc rgb '#d62728', \
     '' using ($0-0.167):2:4 with labels offset 0,0.8 notitle, \
     '' using ($0+0.167):3:5 with labels offset 0,0.8 notitle
