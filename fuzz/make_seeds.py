# Writes the hand-made seeds of fuzz/corpus/ (run from the repository root: python3 fuzz/make_seeds.py).
# Real examples are copied from examples/ and tests/config/fixtures/; the rest are edge cases.
# Files libFuzzer found and we kept as regression seeds live next to these (named crash-*, regress-*).
import os, shutil, struct, json
root = 'fuzz/corpus'
def put(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)
def copy(target, src, name=None):
    put(target, name or os.path.basename(src), open(src, 'rb').read())

# native_json
for f in ['admin-ui','allocated','demo','dns-udp','web']: copy('native_json', f'examples/{f}.json')
put('native_json','empty-services.json','{"services": []}')
put('native_json','backends-only.json','{"services": [], "backends": [{"namespace": "ops", "service": "ui", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "endpoints": ["10.0.0.7:8080", {"address": "[fd00::7]:8080", "ready": false}]}]}]}')
put('native_json','collision.json','{"services": [{"name": "a", "ports": [{"port": 80, "nodePort": 30080, "endpoints": ["127.0.0.1:1"]}]}, {"name": "b", "ports": [{"port": 80, "nodePort": 30080, "endpoints": ["127.0.0.1:2"]}]}]}')
put('native_json','tcp-udp-shared.json','{"nodePortRange": "30000-30010", "services": [{"name": "dns", "ports": [{"name": "dns", "protocol": "UDP", "port": 53, "endpoints": ["10.0.0.10:53"]}, {"name": "dns-tcp", "protocol": "TCP", "port": 53, "endpoints": ["10.0.0.10:53"]}]}]}')
put('native_json','limits.json','{"services": [{"name": "l", "allowSourceRanges": ["10.0.0.0/8", "2001:db8::/32"], "proxyProtocol": "v2", "maxConnections": 2147483647, "maxConnectionsPerSource": 1, "externalTrafficPolicy": "Local", "ports": [{"port": 1, "endpoints": [{"address": "10.1.1.1:65535", "nodeName": "n", "terminating": true, "serving": true, "ready": false}]}]}]}')
put('native_json','deep.json','['*100 + ']'*100)
put('native_json','nul.json', b'{"services": []}\x00')
put('native_json','bom.json', b'\xef\xbb\xbf{"services": []}')
put('native_json','bad-utf8.json', b'{"services": [{"name": "\xc3\x28"}]}')
put('native_json','numbers.json','{"services": [{"name": "n", "ports": [{"port": 1e2, "nodePort": -0, "endpoints": ["1.2.3.4:80"]}, {"port": 18446744073709551616, "endpoints": []}]}]}')
put('native_json','escapes.json','{"services": [{"name": "\\u0000\\ud800x", "namespace": "\\"\\\\", "ports": []}]}')
put('native_json','small-range.json','{"nodePortRange": "30000-30001", "services": [{"name": "a", "ports": [{"name": "a", "port": 1, "endpoints": ["127.0.0.1:1"]}, {"name": "b", "port": 2, "endpoints": ["127.0.0.1:1"]}, {"name": "c", "port": 3, "endpoints": ["127.0.0.1:1"]}]}]}')

# kubernetes_json
copy('kubernetes_json','tests/config/fixtures/cluster.json')
copy('kubernetes_json','examples/kubernetes/local-list.json')
copy('kubernetes_json','examples/kubernetes/guide-endpoints.json')
put('kubernetes_json','service.json', json.dumps({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop","annotations":{"nodeport-proxy.io/allow-source-ranges":"10.0.0.0/8, 192.168.0.0/16","nodeport-proxy.io/proxy-protocol":"v1","nodeport-proxy.io/max-connections":"100","nodeport-proxy.io/max-connections-per-source":"10"}},"spec":{"type":"LoadBalancer","externalTrafficPolicy":"Local","healthCheckNodePort":32000,"ports":[{"name":"http","port":80,"nodePort":30080,"protocol":"TCP"},{"name":"q","port":81,"protocol":"UDP"}]}}))
put('kubernetes_json','slice.json', json.dumps({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-abc","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv6","ports":[{"name":"http","port":8080,"protocol":"TCP"}],"endpoints":[{"addresses":["fd00::1"],"conditions":{"ready":False,"serving":True,"terminating":True},"nodeName":"n1"},{"addresses":["10.0.0.1"]}]}))
put('kubernetes_json','servicelist.json', json.dumps({"apiVersion":"v1","kind":"ServiceList","items":[{"kind":"Service","apiVersion":"v1","metadata":{"name":"a"},"spec":{"type":"NodePort","publishNotReadyAddresses":True,"ports":[{"port":"80"}]}},{"kind":"ConfigMap","metadata":{"name":"x"}}]}))
put('kubernetes_json','clusterip-nodeport.json', json.dumps({"apiVersion":"v1","kind":"Service","metadata":{"name":"c"},"spec":{"type":"ClusterIP","ports":[{"port":80,"nodePort":30080}]}}))
put('kubernetes_json','other-kind.json','{"apiVersion": "apps/v1", "kind": "Deployment"}')

# yaml
for f in ['cluster.yaml','guide-service.yaml','guide-slice.yaml','skipped.yaml']: copy('yaml', f'tests/config/fixtures/{f}')
for f in ['admin-ui-service.yaml','guide-endpointslice.yaml']: copy('yaml', f'examples/kubernetes/{f}')
put('yaml','native.yaml','services:\n  - name: web\n    ports:\n      - port: 80\n        nodePort: 30080\n        endpoints: ["127.0.0.1:8080", "[::1]:8081"]\n')
put('yaml','billion-laughs.yaml','a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n')
put('yaml','deep-flow.yaml','x: ' + '['*200 + ']'*200 + '\n')
put('yaml','deep-block.yaml',''.join('  '*i + 'k:\n' for i in range(80)))
put('yaml','tags.yaml','a: !!str 80\nb: !!int "0x1F"\nc: !!float 1.5\nd: !!bool true\ne: !!null ""\nf: !custom x\ng: 0o17\nh: yes\ni: ~\nj: .inf\n')
put('yaml','duplicate-keys.yaml','services: []\nservices: []\n')
put('yaml','multi-doc.yaml','---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}]}\n---\nservices: []\n...\n')
put('yaml','merge-key.yaml','base: &base {port: 80}\nservices:\n  - name: m\n    ports:\n      - <<: *base\n        endpoints: ["127.0.0.1:1"]\n')
put('yaml','comment-only.yaml','# nothing here\n')
put('yaml','anchor-key.yaml','? &k [a, b]\n: v\n*k : w\n')

# ip (text and structured)
for i, t in enumerate(['10.0.0.1','::1','fe80::1','::ffff:10.1.2.3','[::1]:8080','127.0.0.1:65535','10.0.0.0/8','2001:db8::/32','::ffff:0:0/96','0.0.0.0/0','::/0','10.0.0.1/24','1.2.3.4/33','fe80::1%eth0','01.2.3.4','1.2.3.4:0','[1.2.3.4]:80','1:2:3:4:5:6:7:8','1::2::3','255.255.255.255/32']):
    put('ip', f'text-{i:02d}', t)
put('ip','structured-v4', bytes([0,10,0,0,0]+[0]*12+[0,10,0,0,5]+[0]*12+[8]))
put('ip','structured-v6', bytes([1]+[0x20,0x01,0x0d,0xb8]+[0]*12+[1]+[0x20,0x01,0x0d,0xb8]+[0]*11+[1]+[32]))
put('ip','structured-mapped', bytes([0,192,168,0,0]+[0]*12+[1]+[0]*10+[0xff,0xff,192,168,7,7]+[16]))

# duration
for i, t in enumerate(['250ms','5s','2m','1h','1h30m','1.5s','30','0','0.0001s','9223372036854775807','9223372036854775807ms','2562047788015h','1h1h','5s.','-5s','1ns','.5m','1.h','00000000000000000000001s','1.99999999999999999999999999999ms']):
    put('duration', f'd-{i:02d}', t)

# forward
for i, t in enumerate(['30080=127.0.0.1:8080','tcp:30080=127.0.0.1:8080,[::1]:8081','udp:53=10.0.0.1:53','UDP:5353 = 10.0.0.1:53 , 10.0.0.2:53','30080=127.0.0.1:8080,127.0.0.1:8080','=','30080=','70000=1.2.3.4:5','30080=0.0.0.0:1','sctp:1=1.2.3.4:5','30080=224.0.0.1:5','30080=127.0.0.1:8080,,','00080=127.0.0.1:8080','30080=[::ffff:127.0.0.1]:8080','30080=host:80']):
    put('forward', f'f-{i:02d}', t)

# proxy_protocol: family byte + 16 address bytes + 2 port bytes, twice
def addr(fam, b): return bytes([fam]) + bytes(b) + bytes(16-len(b))
def pp(cfam, cb, cport, lfam, lb, lport): return addr(cfam,cb)+struct.pack('>H',cport)+addr(lfam,lb)+struct.pack('>H',lport)
put('proxy_protocol','v4-v4', pp(0,[192,0,2,1],56324,0,[198,51,100,7],30080))
put('proxy_protocol','v6-v6', pp(1,[0x20,1,0xd,0xb8]+[0]*11+[1],65535,1,[0]*15+[1],1))
put('proxy_protocol','mapped-v4', pp(2,[10,0,0,1],1000,0,[10,0,0,2],30080))
put('proxy_protocol','v4-v6-mixed', pp(0,[127,0,0,1],0,1,[0xfe,0x80]+[0]*13+[1],0))
put('proxy_protocol','zeros', pp(0,[],0,0,[],0))

# admin_http: role byte (0 health, 1 metrics, 2 both) + request
reqs = [(0,'GET /livez HTTP/1.1\r\nHost: x\r\n\r\n'),(0,'GET /readyz?verbose HTTP/1.1\r\nHost: x\r\n\r\n'),(0,'HEAD /healthz HTTP/1.0\r\n\r\n'),
        (1,'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),(1,'GET /status HTTP/1.1\r\n\r\n'),(1,'GET /status.json HTTP/1.1\r\n\r\n'),
        (2,'GET / HTTP/1.1\r\n\r\n'),(0,'POST /livez HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello'),(0,'GET /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
        (1,'GET /nope HTTP/1.1\r\n\r\n'),(0,'GET /livez HTTP/1.1\r\nX: ' + 'a'*9000 + '\r\n\r\n'),(0,'GARBAGE\r\n\r\n'),(0,'GET /livez HTTP/1.1\r\nHost: x'),
        (2,'DELETE /metrics HTTP/1.1\r\n\r\n'),(0,''),(2,'GET /livez HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n')]
for i,(r,q) in enumerate(reqs): put('admin_http', f'req-{i:02d}', bytes([r]) + q.encode())
