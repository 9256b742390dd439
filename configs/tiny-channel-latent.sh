#!/bin/sh
# The shipped default model, `tiny-channel-latent`, from scratch: two training legs and the export.
#   sh configs/tiny-channel-latent.sh [--no-progress]
# Run it again after any interruption: each leg goes on from its last checkpoint (`--resume auto`), and a
# finished leg has nothing to do. About 8.1 hours on a 2-core AMD EPYC (docs/training.md).
set -e
swintormer train --config configs/tiny-channel-latent.yaml --resume auto "$@"
swintormer train --config configs/tiny-channel-latent-longer-joint.yaml --resume auto "$@"
swintormer weights export runs/tiny-channel-latent-longer-joint tiny-channel-latent --which last --folder weights --default \
    --recipe configs/tiny-channel-latent.sh
