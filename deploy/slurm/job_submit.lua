--[[
linkwise job_submit.lua: one-node GPU requests in the form Slurm places link-aware.

Rewrites a per-node GPU request (`--gres=gpu[:type]:N`, `--gpus-per-node=N`) of a job
that runs on one node into the per-job form (`--gpus=[type:]N`) and pins the job to one
node, so that the GPUs are chosen by the link-aware path:
  * Slurm 24.05 and later rank `--gres=gpu:N` candidates by ascending link count (the
    least-connected GPUs win) while `--gpus=N` stays link-aware;
  * Slurm 22.05 and 23.x choose either form greedily around the first free GPU; with
    `linkwise slurm gres --links steer` both forms take linkwise's sets.
Jobs for several nodes, jobs with other GRES in the same request, and jobs that already
use `--gpus` are left alone. Install: JobSubmitPlugins=lua in slurm.conf and this file as
job_submit.lua beside slurm.conf. Generated with linkwise; see docs/slurm.md.
]]

local NO_VAL = 4294967294

-- "gres:gpu:2", "gres/gpu:2", "gpu:h100:4" -> type (or nil), count; nil when the
-- string is not exactly one GPU request.
local function one_gpu_request(tres)
  if tres == nil or tres == "" or string.find(tres, ",", 1, true) then
    return nil
  end
  local spec = string.gsub(tres, "^gres[:/]", "")
  local typ, n = string.match(spec, "^gpu:([%w_%-%.]+):(%d+)$")
  if n == nil then
    n = string.match(spec, "^gpu:(%d+)$")
    typ = nil
  end
  if n == nil then
    return nil
  end
  return typ, tonumber(n)
end

local function unset(v)
  return v == nil or v == NO_VAL or v == 0
end

function slurm_job_submit(job_desc, part_list, submit_uid)
  if not unset(job_desc.tres_per_job) and job_desc.tres_per_job ~= "" then
    return slurm.SUCCESS
  end
  local typ, n = one_gpu_request(job_desc.tres_per_node)
  if n == nil or n < 1 then
    return slurm.SUCCESS
  end
  local min, max = job_desc.min_nodes, job_desc.max_nodes
  local one_node = (min == 1 and (unset(max) or max == 1)) or (unset(min) and (unset(max) or max == 1))
  if not one_node then
    return slurm.SUCCESS
  end
  local form = "gres:gpu:" .. (typ and (typ .. ":") or "") .. n
  job_desc.tres_per_job = form
  job_desc.tres_per_node = ""
  job_desc.min_nodes = 1
  job_desc.max_nodes = 1
  slurm.log_info("linkwise: job from uid %u: %s per node on one node -> %s per job", submit_uid, form, form)
  return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end

return slurm.SUCCESS
