package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NormalizeRef returns the canonical form of an image reference as the store
// keeps it: a tag reference always carries a tag ("busybox" becomes
// "busybox:latest"); a digest reference keeps "repo@sha256:...". No default
// registry is added: "busybox" and "docker.io/library/busybox" are different
// names to the store.
func NormalizeRef(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidRef)
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		repo, dg := s[:i], s[i+1:]
		if _, err := v1.NewHash(dg); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrInvalidRef, s, err)
		}
		if _, err := name.NewRepository(repo); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrInvalidRef, s, err)
		}
		return repo + "@" + dg, nil
	}
	repo, tag := s, "latest"
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		repo, tag = s[:i], s[i+1:]
	}
	if _, err := name.NewTag(repo + ":" + tag); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidRef, s, err)
	}
	return repo + ":" + tag, nil
}

// stripDomain returns a normalized reference without its registry host, if
// the first path component looks like one (contains '.' or ':', or is
// "localhost"), and whether one was stripped. Docker Hub's official images
// lose their "library/" too, as Docker names them: "docker.io/library/hello:1"
// gives "hello:1".
func stripDomain(ref string) (string, bool) {
	i := strings.IndexByte(ref, '/')
	if i < 0 {
		return ref, false
	}
	first, rest := ref[:i], ref[i+1:]
	if first == "docker.io" || first == "index.docker.io" {
		return strings.TrimPrefix(rest, "library/"), true
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return rest, true
	}
	return ref, false
}

var digestPrefixRE = regexp.MustCompile(`^(sha256:)?[0-9a-f]{4,64}$`)

// isTagOnly reports whether s is a bare tag (e.g. "1.35" in an OCI
// archive's org.opencontainers.image.ref.name) rather than a full reference.
func isTagOnly(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/:@")
}
