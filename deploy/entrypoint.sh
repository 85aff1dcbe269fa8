#!/bin/sh
# The image's entry command (deploy/Dockerfile's ENTRYPOINT), the one place it is written:
# tests/deploy/test_recipe.py runs this very file.
#
# The packaged configs/serve.yaml stays the primary config, so everything it sets (the
# `sampling@sample: default` group included) holds unless changed. $CADENZA_SITE_CONFIG/deploy/
# serve.yaml, a `# @package _global_` file (the image's copy of deploy/serve.yaml, or the
# Kubernetes ConfigMap mounted over it), is layered on top: --config-dir puts the folder on
# Hydra's search path and `+deploy=serve` adds that file to the defaults list, after
# serve.yaml's own entries. A plain serve.yaml in the --config-dir would never be read: Hydra
# searches that folder after the packaged configs, whose serve.yaml it finds first.
# Arguments are Hydra overrides (`port=9000`) and win over both files.
set -eu
exec cadenza-serve --config-dir "${CADENZA_SITE_CONFIG:-/etc/cadenza}" +deploy=serve "$@"
