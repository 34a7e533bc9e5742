# Writes a C header with one macro per RPC of a .proto file, so C code names
# methods without spelling out paths:
#   #define FLEETING_RPC_CONNECT_INFO "/flotilla.fleeting.v1.InstanceGroup/ConnectInfo"
# for file fleeting.proto, package flotilla.fleeting.v1, service
# InstanceGroup, method ConnectInfo.  Run as: awk -v name=NAME -f this FILE.
# Expects the layout of our .proto files: "package x;" and "service S {" at
# the start of a line, one "rpc M(...)" a line, the service's "}" in column 1.

function macro(s,    out, i, c) {
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (i > 1 && c ~ /[A-Z]/ && substr(s, i - 1, 1) ~ /[a-z0-9]/)
			out = out "_"
		out = out toupper(c)
	}
	return out
}

BEGIN {
	guard = "FL_GEN_" toupper(name) "_RPC_H"
	print "/* Generated from proto/" name ".proto by proto/rpc-paths.awk: do not edit. */"
	print "#ifndef " guard
	print "#define " guard
}

/^package[ \t]/ {
	pkg = $2
	sub(/;.*/, "", pkg)
}

/^service[ \t]/ {
	svc = $2
	sub(/\{.*/, "", svc)
}

svc != "" && /^[ \t]*rpc[ \t]/ {
	m = $0
	sub(/^[ \t]*rpc[ \t]+/, "", m)
	sub(/[ \t]*\(.*/, "", m)
	path = "/" (pkg != "" ? pkg "." : "") svc "/" m
	print "#define " toupper(name) "_RPC_" macro(m) " \"" path "\""
}

/^}/ {
	svc = ""
}

END {
	print "#endif"
}
