// Package e2e holds drover's end-to-end tests: real Slurm jobs in vnodes that drover boots and
// live-migrates on the testbed. They are built only with -tags e2e (make e2e-slurm); each writes
// its figures as one JSON object to $DROVER_E2E_OUT.
package e2e
