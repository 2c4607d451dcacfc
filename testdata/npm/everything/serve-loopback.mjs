// Starts @modelcontextprotocol/server-everything's streamable HTTP transport
// bound to 127.0.0.1 only. The package has no host flag or variable: it calls
// express's app.listen(PORT), which binds every interface. So this wrapper
// makes every listen() that names only a port also name 127.0.0.1, then
// loads the package's own transport module unchanged. With PORT=0 the kernel
// picks a free port; the wrapper prints "MCPGW_LISTENING <host:port>" on
// stderr once the socket is bound, which the Go tests wait for.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const portOnly = typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]));
  if (portOnly && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  } else if (args[0] && typeof args[0] === "object" && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  this.once("listening", () => {
    const a = this.address();
    process.stderr.write(`MCPGW_LISTENING ${a.address}:${a.port}\n`);
  });
  return listen.apply(this, args);
};

await import("./node_modules/@modelcontextprotocol/server-everything/dist/transports/streamableHttp.js");
