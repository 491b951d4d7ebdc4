# syntax=docker/dockerfile:1
# The operator image: a release build on Debian bookworm, run on distroless (glibc, no shell) as the
# non-root user 65532. TLS uses rustls with webpki roots, so the runtime needs no OpenSSL.
#
#   docker build -t ghcr.io/databricks-account-operator/databricks-account-operator:dev .

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Download the dependencies in their own layer, so source edits do not download them again. The
# workspace resolves only with every member's manifest and every declared target, so the member
# crates (under src/) get empty sources and the benchmark, which the image never builds, a stub.
COPY Cargo.toml Cargo.lock ./
# jemalloc's build-time settings (see the file).
COPY .cargo ./.cargo
COPY src/databricks/Cargo.toml ./src/databricks/
COPY src/sim/Cargo.toml ./src/sim/
RUN echo 'fn main() {}' | tee src/main.rs src/sim/main.rs >/dev/null \
    && touch src/lib.rs src/databricks/lib.rs src/sim/lib.rs \
    && mkdir -p benches && echo 'fn main() {}' >benches/scale.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY src ./src
# Only the operator's package: the simulator (src/sim) is a dev-dependency of it, and not built.
# The target directory is a build cache (BuildKit), so the binary is copied out of it.
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p databricks-account-operator --bin databricks-account-operator \
    && install -D -m 0755 target/release/databricks-account-operator /out/databricks-account-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="databricks-account-operator" \
      org.opencontainers.image.description="Kubernetes operator for Databricks account-level AWS provisioning objects" \
      org.opencontainers.image.source="https://github.com/databricks-account-operator/databricks-account-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/databricks-account-operator /usr/local/bin/databricks-account-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/databricks-account-operator"]
CMD ["run"]
