// Module hook: lowers automerge-repo's per-document sync throttle (a class
// field fixed at 100 ms) to AMR_SYNC_THROTTLE_MS, so the benchmark can
// report automerge-repo both as shipped and tuned for latency.
const ms = Number(process.env.AMR_SYNC_THROTTLE_MS);

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (url.includes("automerge-repo") && url.endsWith("/synchronizer/DocSynchronizer.js")) {
    const source = String(result.source).replace("syncDebounceRate = 100;", `syncDebounceRate = ${ms};`);
    return { ...result, source, shortCircuit: true };
  }
  return result;
}
