// In ~thelounge/.thelounge/config.js
module.exports = {
  identd: { enable: true, port: 9001 },
  oidentd: null,
};
