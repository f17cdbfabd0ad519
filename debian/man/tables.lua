-- Man pages are set 80 columns wide, where a table with long cells cannot be set
-- ("cannot adjust line"): each row becomes a paragraph, "Heading: cell; Heading: cell".
function Table(t)
  local s = pandoc.utils.to_simple_table(t)
  local out = {}
  for _, row in ipairs(s.rows) do
    local inlines = {}
    for i, cell in ipairs(row) do
      if i > 1 then
        table.insert(inlines, pandoc.Str(";"))
        table.insert(inlines, pandoc.Space())
      end
      local head = s.headers[i] and pandoc.utils.stringify(s.headers[i]) or ""
      if head ~= "" then
        table.insert(inlines, pandoc.Strong({ pandoc.Str(head .. ":") }))
        table.insert(inlines, pandoc.Space())
      end
      for _, inline in ipairs(pandoc.utils.blocks_to_inlines(cell)) do
        table.insert(inlines, inline)
      end
    end
    table.insert(out, pandoc.Para(inlines))
  end
  return out
end
