package sandbox

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// PrintTable writes where every machine landed and the kubeconfig of every cluster.
func (s *Sandbox) PrintTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tMACHINE\tROLE\tINFRA CLUSTER\tINFRA NODE\tIP\tPHASE")
	for _, r := range s.Machines() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Tenant, r.Machine, r.Role, dash(r.Infra), dash(r.InfraNode), dash(r.IP), dash(r.Phase))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tKUBECONFIG")
	for _, k := range s.Kubeconfigs() {
		fmt.Fprintf(tw, "%s\t%s\n", k[0], k[1])
	}
	return tw.Flush()
}
