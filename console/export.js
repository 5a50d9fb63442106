// Export of the rows a view has loaded, as CSV or JSON, through a Blob download: the data
// never leaves the browser except to the file the operator saves.

/** RFC 4180 CSV: one column per key seen in any row; objects as JSON text. */
export function toCsv(rows) {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => {
    if (v === undefined || v === null) return "";
    const s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map(cell).join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}

/** Saves `rows` as `<name>.csv` or `<name>.json`. */
export function download(rows, name, format) {
  const body = format === "csv" ? toCsv(rows) : JSON.stringify(rows, null, 2) + "\n";
  const type = format === "csv" ? "text/csv" : "application/json";
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = `${name}.${format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
