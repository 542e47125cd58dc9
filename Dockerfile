# poolwatch container: multi-stage build, runs as an unprivileged user.
#   docker build -t poolwatch .
#   docker run --rm -p 127.0.0.1:8080:8080 -v poolwatch-data:/var/lib/poolwatch poolwatch
# Live capture needs the host's network and CAP_NET_RAW (only then):
#   docker run --rm --network host --cap-add NET_RAW poolwatch serve --config /etc/poolwatch/poolwatch.toml --interface eth0
# See docs/install.md and compose.yaml.

FROM rust:1.85-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No .git in the build context: pass the commit for `poolwatch --version`.
ARG POOLWATCH_GIT_COMMIT=unknown
ENV POOLWATCH_GIT_COMMIT=${POOLWATCH_GIT_COMMIT}
RUN cargo build --release --locked --bin poolwatch \
 && mkdir -p /out/man /out/completions \
 && target/release/poolwatch manpage --dir /out/man \
 && target/release/poolwatch completions bash -o /out/completions/poolwatch.bash

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system poolwatch \
 && useradd --system --gid poolwatch --home-dir /var/lib/poolwatch --shell /usr/sbin/nologin poolwatch \
 && mkdir -p /var/lib/poolwatch /etc/poolwatch \
 && chown poolwatch:poolwatch /var/lib/poolwatch
COPY --from=build /src/target/release/poolwatch /usr/bin/poolwatch
COPY --from=build /out/man/ /usr/share/man/man1/
COPY --from=build /out/completions/poolwatch.bash /usr/share/bash-completion/completions/poolwatch
COPY dist/poolwatch.toml /etc/poolwatch/poolwatch.toml
USER poolwatch:poolwatch
WORKDIR /var/lib/poolwatch
VOLUME ["/var/lib/poolwatch"]
EXPOSE 8080
ENV POOLWATCH_LISTEN=0.0.0.0:8080 \
    POOLWATCH_DB=/var/lib/poolwatch/db
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["/usr/bin/poolwatch", "--version"]
ENTRYPOINT ["/usr/bin/poolwatch"]
CMD ["serve", "--config", "/etc/poolwatch/poolwatch.toml"]
