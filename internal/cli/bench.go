package cli

import "github.com/spf13/cobra"

// benchVerbs are the `drover bench` subcommands; each registers itself from its own file
// (an init func appending to this list).
var benchVerbs []func(*app) *cobra.Command

func init() { verbs = append(verbs, (*app).benchCommand) }

func (a *app) benchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "End-to-end benchmarks; each prints its figures, the last line one JSON object",
		Args:  cobra.NoArgs,
	}
	for _, verb := range benchVerbs {
		cmd.AddCommand(verb(a))
	}
	return cmd
}
