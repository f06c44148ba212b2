# Reads `go test -v` output of the fault suite (through the Makefile's
# filter) and, after passing it through, prints one line per scenario:
# its result, its time and what its load saw.
{ print }
/^ *--- (PASS|FAIL)/ {
	name = $3; r = $2; sub(/:$/, "", r); res[name] = r
	t = $4; gsub(/[()]/, "", t); took[name] = t
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
/load of [^ ]+: [0-9]+ round trips/ {
	match($0, /load of [^ ]+: /); name = substr($0, RSTART + 8, RLENGTH - 10)
	load[name] = substr($0, RSTART + RLENGTH)
}
END {
	if (n == 0) exit
	printf "\n%-36s %-6s %8s  %s\n", "scenario", "result", "time", "load (round trips, refused during the fault, other errors, created)"
	for (i = 1; i <= n; i++) {
		k = order[i]
		printf "%-36s %-6s %8s  %s\n", k, res[k], took[k], (k in load) ? load[k] : "-"
	}
}
