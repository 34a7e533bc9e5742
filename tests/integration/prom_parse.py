#!/usr/bin/env python3
"""A strict parser for the Prometheus text exposition format 0.0.4, for
tests/integration/httpd.sh (promtool is not on the test machines).

    prom_parse.py check FILE           exit 0, or print the first error
    prom_parse.py types FILE           "name type" per family
    prom_parse.py value FILE NAME [LABELS_JSON]
                                       the sample's value (exact labels)
    prom_parse.py labels FILE NAME     the label sets of NAME, as JSON lines

Strictness: UTF-8, a final newline, HELP and TYPE at most once per family
and before its samples, every sample inside a declared family, the samples
of a family contiguous, valid metric and label names, only the escapes
\\\\ \\" \\n in label values, parseable values, no duplicate series,
counters >= 0, histograms with _bucket/_sum/_count only, "le" increasing
and ending at +Inf, cumulative counts non-decreasing and +Inf == _count.
"""
import json
import math
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


class ParseError(Exception):
    pass


def parse_value(s, where):
    if s in ('+Inf', 'Inf'):
        return math.inf
    if s == '-Inf':
        return -math.inf
    if s == 'NaN':
        return math.nan
    if not re.fullmatch(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?', s):
        raise ParseError('%s: bad value %r' % (where, s))
    return float(s)


def parse_labels(s, i, where):
    """s[i] is '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i < len(s) and s[i] == '}':
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise ParseError('%s: bad label name at %d' % (where, i))
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ParseError('%s: expected =" after %s' % (where, name))
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise ParseError('%s: unterminated label value' % where)
            c = s[i]
            if c == '\\':
                n = s[i + 1:i + 2]
                if n == '\\':
                    val.append('\\')
                elif n == '"':
                    val.append('"')
                elif n == 'n':
                    val.append('\n')
                else:
                    raise ParseError('%s: bad escape \\%s' % (where, n))
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                raise ParseError('%s: raw newline in label value' % where)
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ParseError('%s: duplicate label %s' % (where, name))
        labels[name] = ''.join(val)
        if i < len(s) and s[i] == ',':
            i += 1
        elif i < len(s) and s[i] == '}':
            continue
        else:
            raise ParseError('%s: expected , or } after label' % where)


def family_of(name, families):
    if name in families:
        return name
    for suf in ('_bucket', '_sum', '_count'):
        if name.endswith(suf) and name[:-len(suf)] in families and \
                families[name[:-len(suf)]]['type'] == 'histogram':
            return name[:-len(suf)]
    return None


def parse(text):
    if not text.endswith('\n'):
        raise ParseError('no final newline')
    families = {}
    order = []
    samples = {}
    current = None
    done = set()
    for no, line in enumerate(text.split('\n')[:-1], 1):
        where = 'line %d' % no
        if line == '':
            raise ParseError('%s: empty line' % where)
        if line.startswith('#'):
            m = re.fullmatch(r'# (HELP|TYPE) (\S+) ?(.*)', line)
            if not m:
                raise ParseError('%s: stray comment %r' % (where, line))
            kind, name, rest = m.groups()
            if not NAME.fullmatch(name):
                raise ParseError('%s: bad metric name %r' % (where, name))
            if name in done:
                raise ParseError('%s: family %s seen again' % (where, name))
            if current is not None and current != name:
                done.add(current)
            current = name
            f = families.setdefault(name, {'type': None, 'help': None,
                                           'samples': 0})
            if name not in order:
                order.append(name)
            if kind == 'HELP':
                if f['help'] is not None:
                    raise ParseError('%s: second HELP for %s' % (where, name))
                if re.search(r'\\[^\\n]', rest.replace('\\\\', '')):
                    raise ParseError('%s: bad escape in HELP' % where)
                f['help'] = rest
            else:
                if f['type'] is not None:
                    raise ParseError('%s: second TYPE for %s' % (where, name))
                if f['samples']:
                    raise ParseError('%s: TYPE after samples' % where)
                if rest not in TYPES:
                    raise ParseError('%s: bad type %r' % (where, rest))
                f['type'] = rest
            continue
        m = NAME.match(line)
        if not m:
            raise ParseError('%s: bad sample name' % where)
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == '{':
            labels, i = parse_labels(line, i, where)
        if i >= len(line) or line[i] != ' ':
            raise ParseError('%s: expected a space before the value' % where)
        parts = line[i + 1:].split(' ')
        if len(parts) not in (1, 2):
            raise ParseError('%s: trailing garbage' % where)
        value = parse_value(parts[0], where)
        if len(parts) == 2 and not re.fullmatch(r'-?\d+', parts[1]):
            raise ParseError('%s: bad timestamp' % where)
        fam = family_of(name, families)
        if fam is None or families[fam]['type'] is None:
            raise ParseError('%s: sample %s outside a declared family'
                             % (where, name))
        if fam != current:
            raise ParseError('%s: %s not contiguous with its family'
                             % (where, name))
        t = families[fam]['type']
        if t == 'histogram' and name == fam:
            raise ParseError('%s: bare sample in histogram %s' % (where, fam))
        if name.endswith('_bucket') and t == 'histogram':
            if 'le' not in labels:
                raise ParseError('%s: bucket without le' % where)
        elif 'le' in labels and t == 'histogram':
            raise ParseError('%s: le outside _bucket' % where)
        if t == 'counter' and not value >= 0:
            raise ParseError('%s: counter %s is %r' % (where, name, value))
        key = (name, tuple(sorted(labels.items())))
        if key in samples:
            raise ParseError('%s: duplicate series %s%r' % (where, name,
                                                            labels))
        samples[key] = value
        families[fam]['samples'] += 1
    # Histogram consistency.
    for fam, f in families.items():
        if f['type'] != 'histogram':
            continue
        series = {}
        for (name, lab), v in samples.items():
            if family_of(name, families) != fam:
                continue
            d = dict(lab)
            le = d.pop('le', None)
            k = tuple(sorted(d.items()))
            s = series.setdefault(k, {'buckets': [], 'sum': None,
                                      'count': None})
            if name == fam + '_bucket':
                s['buckets'].append((parse_value(le, fam), v))
            elif name == fam + '_sum':
                s['sum'] = v
            else:
                s['count'] = v
        for k, s in series.items():
            where = '%s%r' % (fam, dict(k))
            if s['sum'] is None or s['count'] is None or not s['buckets']:
                raise ParseError('%s: missing _sum, _count or buckets' % where)
            bs = sorted(s['buckets'])
            if bs[-1][0] != math.inf:
                raise ParseError('%s: no +Inf bucket' % where)
            for a, b in zip(bs, bs[1:]):
                if b[1] < a[1]:
                    raise ParseError('%s: buckets not cumulative' % where)
            if bs[-1][1] != s['count']:
                raise ParseError('%s: +Inf %r != _count %r'
                                 % (where, bs[-1][1], s['count']))
    for fam in order:
        if families[fam]['type'] is None:
            raise ParseError('family %s has no TYPE' % fam)
    return families, order, samples


def load(path):
    with open(path, 'rb') as fh:
        raw = fh.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ParseError('not UTF-8: %s' % e)
    return parse(text)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    try:
        families, order, samples = load(path)
    except ParseError as e:
        print('parse error: %s' % e)
        return 1
    if cmd == 'check':
        print('ok %d families %d samples' % (len(families), len(samples)))
    elif cmd == 'types':
        for name in order:
            print(name, families[name]['type'])
    elif cmd == 'value':
        labels = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
        key = (sys.argv[3], tuple(sorted(labels.items())))
        if key not in samples:
            print('no such sample')
            return 1
        v = samples[key]
        print(int(v) if math.isfinite(v) and v == int(v) else v)
    elif cmd == 'labels':
        for (name, lab) in sorted(samples):
            if name == sys.argv[3]:
                print(json.dumps(dict(lab), sort_keys=True))
    else:
        print('unknown command')
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
