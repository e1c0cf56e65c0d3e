// The whole public API of @hpke/core, as one ES module for the browser (see ../README.md).
export * from "@hpke/core";
