package playbook

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// CheckImages returns one error diagnostic, at the reference's range, for
// each image reference in pb for which has(ref) is false. has is called
// once per distinct reference.
func CheckImages(pb *Playbook, has func(ref string) bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	present := map[string]bool{}
	for _, c := range pb.Stack.Containers {
		for _, img := range c.Images {
			ok, asked := present[img.Ref]
			if !asked {
				ok = has(img.Ref)
				present[img.Ref] = ok
			}
			if ok {
				continue
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Image not found",
				Detail: fmt.Sprintf("The image %q used by container %q is not in the local image store; add it with `berth image import FILE` and try again.",
					img.Ref, c.Name),
				Subject: img.Range.Ptr(),
			})
		}
	}
	return diags
}
