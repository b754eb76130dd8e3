# scrubgate on Debian 12: build from this repository, run as a non-root user.
#   docker build -t scrubgate .
#   docker run --rm -p 8080:8080 -v scrubgate-state:/var/lib/scrubgate scrubgate
# The default command serves the shipped dry-run config (no credentials, sends nothing),
# listening on 0.0.0.0:8080 inside the container. For real use, mount a config and pass
# secrets as environment variables:
#   docker run -v /etc/scrubgate:/config:ro -e TIKTOK_ACCESS_TOKEN=... scrubgate serve -c /config/scrubgate.json

FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make cmake pkg-config uglifyjs \
      libevent-dev libcurl4-openssl-dev libpcre2-dev libjansson-dev libssl-dev \
      libphonenumber-dev zlib1g-dev libnats-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DSG_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && cmake --install /build --prefix /opt/scrubgate \
 && sed -i 's/"listen": "127.0.0.1:8080"/"listen": "0.0.0.0:8080"/' \
      /opt/scrubgate/etc/scrubgate/scrubgate.json \
 && grep -q '"listen": "0.0.0.0:8080"' /opt/scrubgate/etc/scrubgate/scrubgate.json

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libevent-2.1-7 \
      libevent-core-2.1-7 libevent-extra-2.1-7 libevent-pthreads-2.1-7 libcurl4 \
      libpcre2-8-0 libjansson4 libssl3 libphonenumber8 zlib1g libnats3.4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin scrubgate \
 && install -d -o scrubgate -g scrubgate -m 0700 /var/lib/scrubgate
COPY --from=build /opt/scrubgate /opt/scrubgate
USER scrubgate
VOLUME /var/lib/scrubgate
EXPOSE 8080
ENTRYPOINT ["/opt/scrubgate/bin/scrubgate"]
CMD ["serve", "-c", "/opt/scrubgate/etc/scrubgate/scrubgate.json"]
