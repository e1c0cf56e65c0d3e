// split and combine from shamir-secret-sharing, as one ES module for the browser (see ../README.md).
export { combine, split } from "shamir-secret-sharing";
