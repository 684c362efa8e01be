package replay

import (
	"fmt"
	"slices"
	"strings"
)

// PIKFields are the PIK-only fields of the contract; paymentContactAddress
// and paymentContactAccount are objects, whose fields PIK's docs name.
var PIKFields = []string{"contactCode", "contactType", "businessType", "firstName", "lastName",
	"nickname", "countryCode", "nationality", "paymentContactAddress", "paymentContactAccount"}

// CheckSetPath refuses a --set of a field the command does not have: a
// top-level field of the contract, metadata.<key>, pik.<field>, or a field
// of pik.paymentContactAddress or pik.paymentContactAccount.
func CheckSetPath(s Set) error {
	p := s.Path
	ok := false
	switch p[0] {
	case "provider", "name", "email", "mobile", "tagId", "companyName":
		ok = len(p) == 1
	case "metadata":
		ok = len(p) == 2
	case "pik":
		switch {
		case len(p) == 2:
			ok = slices.Contains(PIKFields, p[1]) && p[1] != "paymentContactAddress" && p[1] != "paymentContactAccount"
		case len(p) > 2:
			ok = p[1] == "paymentContactAddress" || p[1] == "paymentContactAccount"
		}
	}
	if !ok {
		return fmt.Errorf("--set %s: the command has no field %s (fields: provider, name, email, mobile, tagId, companyName, metadata.<key>, pik.<%s>, pik.paymentContactAddress.<field>, pik.paymentContactAccount.<field>)",
			s, strings.Join(p, "."), strings.Join(PIKFields[:8], "|"))
	}
	return nil
}
