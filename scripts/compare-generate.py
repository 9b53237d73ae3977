# Runs `engine-core generate` of two builds (old, new) on the golden prompts of both real
# models with every output option, and reports any run whose stdout or exit status differs.
# Usage: python3 scripts/compare-generate.py OLD_BINARY NEW_BINARY  (from the repository root)
import json, subprocess, sys
old, new = sys.argv[1], sys.argv[2]
runs = []
for model, data in [("models/SmolLM2-135M-Instruct.Q4_1.gguf", "engine-core/tests/data/smollm2_golden.json"),
                    ("models/gemma-3-270m-q4_k_m.gguf", "engine-core/tests/data/gemma3_golden.json")]:
    cases = json.load(open(data))["cases"]
    for c in cases:
        base = ["generate", "--model", model, "--prompt", c["text"], "--json", "--max-tokens", "24"]
        if c.get("kind") == "chat": base.append("--chat")
        runs.append(base)
    c = cases[0]
    runs.append(["generate","--model",model,"--prompt",c["text"],"--json","--max-tokens","16","--logprobs","3","--prompt-logprobs","2"])
    runs.append(["generate","--model",model,"--prompt",c["text"],"--json","--max-tokens","20","--temperature","0.8","--seed","7","--top-p","0.9","--top-k","40"])
    runs.append(["generate","--model",model,"--prompt",c["text"],"--json","--max-tokens","30","--stop"," the","--prefill-chunk","3","--block-size","4"])
    runs.append(["generate","--model",model,"--prompt-token-ids","1,2,3,4","--json","--max-tokens","8"])
    runs.append(["generate","--model",model,"--prompt",c["text"],"--max-tokens","8"])
bad = 0
for r in runs:
    a = subprocess.run([old]+r, capture_output=True, text=True)
    b = subprocess.run([new]+r, capture_output=True, text=True)
    same = a.stdout == b.stdout and a.returncode == b.returncode
    bad += not same
    if not same:
        print("DIFF", r, "\nold:", a.stdout[:300], a.stderr[-300:], "\nnew:", b.stdout[:300], b.stderr[-300:])
print(f"{len(runs)-bad}/{len(runs)} identical")
