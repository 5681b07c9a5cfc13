package unpack

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// POSIX ACL xattr format (linux/posix_acl_xattr.h): a version word, then
// entries of tag, permissions and id, sorted by tag and id.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclUndefID  = 0xffffffff
)

// idMap resolves user and group names of ACL entries with the target's own
// /etc/passwd and /etc/group: the names belong to the restored system.
type idMap struct{ users, groups map[string]uint32 }

func loadIDs(root string) *idMap {
	return &idMap{users: readIDs(filepath.Join(root, "etc/passwd")), groups: readIDs(filepath.Join(root, "etc/group"))}
}

func readIDs(file string) map[string]uint32 {
	m := map[string]uint32{}
	f, err := os.Open(file)
	if err != nil {
		return m
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) > 2 {
			if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
				m[fields[0]] = uint32(id)
			}
		}
	}
	return m
}

// aclXattr converts GNU tar's text ACL ("user::rwx,user:1000:r-x,group::r-x,
// mask::r-x,other::r--") into the binary system.posix_acl_* value.
func aclXattr(text string, ids *idMap) ([]byte, error) {
	type entry struct {
		tag  uint16
		perm uint16
		id   uint32
	}
	var es []entry
	for _, item := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' }) {
		parts := strings.Split(strings.TrimSpace(item), ":")
		if len(parts) < 3 {
			return nil, fmt.Errorf("bad entry %q", item)
		}
		kind, who, perms := parts[0], parts[1], parts[2]
		var e entry
		for _, c := range perms {
			switch c {
			case 'r':
				e.perm |= 4
			case 'w':
				e.perm |= 2
			case 'x':
				e.perm |= 1
			case '-':
			default:
				return nil, fmt.Errorf("bad permissions %q", perms)
			}
		}
		e.id = aclUndefID
		lookup := func(m map[string]uint32) error {
			if n, err := strconv.ParseUint(who, 10, 32); err == nil {
				e.id = uint32(n)
				return nil
			}
			id, ok := m[who]
			if !ok {
				return fmt.Errorf("unknown name %q in the target's passwd/group", who)
			}
			e.id = id
			return nil
		}
		switch {
		case kind == "user" && who == "":
			e.tag = aclUserObj
		case kind == "user":
			e.tag = aclUser
			if err := lookup(ids.users); err != nil {
				return nil, err
			}
		case kind == "group" && who == "":
			e.tag = aclGroupObj
		case kind == "group":
			e.tag = aclGroup
			if err := lookup(ids.groups); err != nil {
				return nil, err
			}
		case kind == "mask":
			e.tag = aclMask
		case kind == "other":
			e.tag = aclOther
		default:
			return nil, fmt.Errorf("bad entry %q", item)
		}
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].tag != es[j].tag {
			return es[i].tag < es[j].tag
		}
		return es[i].id < es[j].id
	})
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b, nil
}
