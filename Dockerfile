# nodeport-proxy container image. Multi-stage: build on bookworm, run on bookworm-slim.
# Both stages install packages through scripts/deps.sh, the same script CI and the Makefile use;
# tests/repo/docker_libs.sh checks that the runtime group covers every library the binary links.
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNPP_BUILD_TESTS=OFF \
 && cmake --build /build \
 && strip /build/nodeport-proxy

FROM debian:bookworm-slim
COPY scripts/deps.sh /usr/local/lib/nodeport-proxy/deps.sh
RUN /usr/local/lib/nodeport-proxy/deps.sh runtime && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/nodeport-proxy /usr/local/bin/nodeport-proxy
COPY examples /usr/local/share/nodeport-proxy/examples
# Numeric, so Kubernetes' runAsNonRoot can verify it. NodePorts (30000-32767) need no capability.
USER 65532:65532
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/nodeport-proxy"]
CMD ["run", "--endpoints-file", "/etc/nodeport-proxy/endpoints.json"]
