#!/bin/sh
# Regenerates the Go code for every .proto file under devices/. Run from
# anywhere; needs protoc, protoc-gen-go and protoc-gen-go-grpc (go install
# google.golang.org/protobuf/cmd/protoc-gen-go and
# google.golang.org/grpc/cmd/protoc-gen-go-grpc put them in $(go env GOPATH)/bin).
set -eu
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH"
for f in proto/base.proto can/proto/can.proto; do
	protoc --proto_path=. \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		"$f"
done
