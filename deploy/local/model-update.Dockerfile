# A new model version shipped as a new image, for the rolling model update of `make compose-scale-test`: the
# translator image with its model directory replaced by the build context's `model/` (what rebuilding the
# Dockerfile with a retrained models/eng-pol gives; the script copies models/eng-pol with a new version in
# model.json, since no second trained model exists).
ARG FROM_IMAGE=eng-pol-translator:latest
FROM ${FROM_IMAGE}
COPY --chown=root:root model /app/models/eng-pol
