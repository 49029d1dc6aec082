// In ~thelounge/.thelounge/config.js (TheLounge runs as the Unix user thelounge)
module.exports = {
  identd: { enable: false },
  oidentd: "~/.oidentd.conf",
};
