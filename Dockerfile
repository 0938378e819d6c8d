# Build a static ivr-bridge binary, then run it from a minimal image as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ivr-bridge ./cmd/ivr-bridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ivr-bridge /ivr-bridge
EXPOSE 8080
# Numeric: Kubernetes' runAsNonRoot can only verify a numeric user (distroless nonroot is 65532).
USER 65532:65532
ENTRYPOINT ["/ivr-bridge"]
