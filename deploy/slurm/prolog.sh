#!/bin/sh
# Slurm Prolog (slurm.conf: Prolog=/usr/share/linkwise/slurm/prolog.sh): records which
# GPUs the job holds, so `linkwise exporter` attributes their metrics to the job.
exec /usr/bin/linkwise slurm prolog
