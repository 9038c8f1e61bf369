# Makefile: shortcuts for the container images (docs/images.md). The Rust build and
# tests are plain cargo (README).

.PHONY: help images base-image image-smoke bench-container

help:
	@echo "make images           release binaries + aperture-base, aperture-operator, aperture-worker images"
	@echo "make base-image       (re)make only the base image (root: debootstrap)"
	@echo "make image-smoke      run the images against SeaweedFS on 127.0.0.1 (cargo test)"
	@echo "make bench-container  container vs bare-process timing of one invert job"

images:
	scripts/build-images.sh

base-image:
	scripts/build-images.sh --rebuild-base --base-only

image-smoke:
	APERTURE_REQUIRE_DOCKER=1 cargo test -p aperture --test image_smoke

bench-container:
	scripts/bench-container.sh
