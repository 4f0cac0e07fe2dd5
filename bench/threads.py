"""`python -m bench.threads`: the intra-op thread default, measured through HTTP (continuous batching, shipped
model, greedy) at 1 and 32 clients with 1 and 2 onnxruntime threads, alternating, twice; prints one line a run."""
import json, subprocess, sys, time, os, httpx
sent="docs/benchmarks/sentences.json"
def run(threads, c=32, secs=8):
    env={**os.environ,"TRANSLATOR_INTRA_THREADS":str(threads),"TRANSLATOR_PORT":"8791","TRANSLATOR_LOG_LEVEL":"warning"}
    p=subprocess.Popen([sys.executable,"-m","service"],env=env)
    for _ in range(100):
        try:
            if httpx.get("http://127.0.0.1:8791/health/ready").status_code==200: break
        except Exception: pass
        time.sleep(0.2)
    out=json.loads(subprocess.run([sys.executable,"-m","bench.loadgen","http://127.0.0.1:8791/translate",sent,str(c),str(secs)],capture_output=True,text=True).stdout)
    p.terminate(); p.wait()
    ok=[r for r in out["requests"] if r[2]==200]
    lat=sorted(r[1] for r in ok)
    return len(ok)/out["wall"], lat[len(lat)//2]*1000, lat[int(len(lat)*.99)]*1000
if __name__ == "__main__":
  for rep in range(2):
    for t in (1, 2):
        for c in (1,32):
            rps,p50,p99=run(t,c)
            print(f"intra={t} c={c}: {rps:.0f}/s p50 {p50:.1f} ms p99 {p99:.1f} ms", flush=True)
