package cli

import "github.com/spf13/cobra"

func (a *app) checkCommand() *cobra.Command {
	return &cobra.Command{Use: "check", Short: "Check every configured component (being written)"}
}
