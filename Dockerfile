# syntax=docker/dockerfile:1
# Multi-stage build: a static mcpgw binary on a minimal, non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mcpgw ./cmd/mcpgw \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcpgw /usr/local/bin/mcpgw
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 7860
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/mcpgw"]
CMD ["serve", "--listen", "0.0.0.0:7860", "--data", "/data", "--insecure-no-auth"]
