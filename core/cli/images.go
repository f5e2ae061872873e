package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/berth-io/berth/core/api"
)

func newImagesCommand(e *env, use string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use + " [--json]",
		Short: "List images in berthd's store",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			imgs, err := c.Images(cmd.Context())
			if err != nil {
				return fmt.Errorf("images: %w", err)
			}
			if asJSON {
				return writeJSON(e.Out, imagesJSON(imgs))
			}
			return e.printImages(imgs)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

func (e *env) printImages(imgs []api.Image) error {
	tw := tabwriter.NewWriter(e.Out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "REF\tDIGEST\tSIZE\tCREATED")
	for _, img := range imgs {
		created := "-"
		if !img.Created.IsZero() {
			created = humanDuration(e.now().Sub(img.Created)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", dash(img.Ref), shortDigest(img.Digest), humanSize(img.Size), created)
	}
	return tw.Flush()
}

type imageJSON struct {
	Ref     string     `json:"ref"`
	Digest  string     `json:"digest"`
	Size    int64      `json:"size"`
	Created *time.Time `json:"created,omitempty"`
}

func imagesJSON(imgs []api.Image) []imageJSON {
	out := []imageJSON{}
	for _, img := range imgs {
		j := imageJSON{Ref: img.Ref, Digest: img.Digest, Size: img.Size}
		if !img.Created.IsZero() {
			j.Created = &img.Created
		}
		out = append(out, j)
	}
	return out
}

func newImageImportCommand(e *env) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "import FILE [--name REF]",
		Short: "Import an OCI or `docker save` archive into berthd's store",
		Long: `Upload an image archive (an OCI image layout tar, or what 'docker save'
writes) to berthd, which stores its images. --name gives the imported image
that reference, for archives that carry no name or the wrong one.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			path := args[0]
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("import %s: %w: check the path", path, pathErr(err))
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return fmt.Errorf("import %s: %w", path, err)
			}
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()

			var r io.Reader = f
			if isTerminal(e.Err) {
				bar := progressbar.NewOptions64(fi.Size(),
					progressbar.OptionSetWriter(e.Err),
					progressbar.OptionSetDescription("uploading "+path),
					progressbar.OptionShowBytes(true),
					progressbar.OptionClearOnFinish(),
					progressbar.OptionThrottle(100*time.Millisecond),
				)
				defer bar.Close()
				r = io.TeeReader(f, bar)
			}
			imgs, err := c.ImportImageFrom(cmd.Context(), r, name)
			if err != nil {
				if name != "" && errors.Is(err, api.ErrUnsupported) {
					return fmt.Errorf("import %s: this berthd cannot name imported images: import without --name", path)
				}
				return fmt.Errorf("import %s: %w", path, err)
			}
			for _, img := range imgs {
				fmt.Fprintf(e.Out, "Imported %s (%s, %s)\n", dash(img.Ref), shortDigest(img.Digest), humanSize(img.Size))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "reference to give the imported image, e.g. app:1.2")
	return cmd
}

func newImageRemoveCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm REF...",
		Aliases: []string{"remove"},
		Short:   "Remove images from berthd's store",
		Long:    "Remove the named images. An image a container uses is refused. berth goes on\nwith the other references after a failure, and exits 1 if any failed.",
		Args:    cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			failed := 0
			for _, ref := range args {
				if err := c.RemoveImage(cmd.Context(), ref); err != nil {
					if errors.Is(err, api.ErrUnreachable) {
						return err
					}
					failed++
					hint := "" // berthd says how to free an image in use
					if errors.Is(err, api.ErrNotFound) {
						hint = ": see berth images"
					}
					fmt.Fprintf(e.Err, "berth: remove image %s: %v%s\n", ref, err, hint)
					continue
				}
				fmt.Fprintf(e.Out, "Removed %s\n", ref)
			}
			if failed > 0 {
				return &exitError{code: ExitError}
			}
			return nil
		}),
	}
}
